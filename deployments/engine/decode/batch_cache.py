"""BatchCache: the running rows' KV caches as one padded batch; the only code that reshapes KV.

Layout: per layer, keys/values buffers ``[B, H, capacity, D]`` of which the first ``length``
columns are in use. Row ``b``'s own entries sit anywhere in those columns; ``valid[b, t]`` says
which columns hold row ``b``'s tokens (the rest is row padding, masked by the attention mask, so
it gets exactly zero attention). Per-head ragged layouts (AdaKV, KVzip, CriticalAdaKV) and
dense layers shorter than their cache also leave *head* padding inside a row's columns:
``head_pad[layer][b, h, t]``, handed to kvpress's attention patch as
``module.masked_key_indices = (batch_idx, head_idx, seq_idx)`` exactly as the one-row path does.

Costs: ``from_rows`` allocates a block of new rows once (each row written into it once);
``merge`` (and ``join``, a block of one) allocates the joint batch once and copies each side's
used columns into it, so the joiners of a step enter together for one copy of the batch;
``leave`` is one ``index_select`` along rows (plus one along columns to drop columns no remaining
row uses); a decode step writes one column per layer in place (capacity grows by doubling, so the
amortised copy per step is O(1) columns). Nothing is copied per step otherwise. Works the same on
any device (buffers live where the joiner's tensors live).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


class BufferLayer(DynamicLayer):
    """A cache layer writing new columns into a preallocated ``[B, H, capacity, D]`` buffer."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.buf_keys, self.buf_values, self.length = keys, values, length
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    @property
    def keys(self) -> torch.Tensor:  # what transformers/kvpress read: the columns in use
        return self.buf_keys[:, :, : self.length]

    @keys.setter
    def keys(self, value: Any) -> None:  # DynamicLayer.__init__ assigns None; ignore
        pass

    @property
    def values(self) -> torch.Tensor:
        return self.buf_values[:, :, : self.length]

    @values.setter
    def values(self, value: Any) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[-2]
        self.reserve(self.length + new)
        self.buf_keys[:, :, self.length : self.length + new] = key_states
        self.buf_values[:, :, self.length : self.length + new] = value_states
        self.length += new
        return self.keys, self.values

    def reserve(self, columns: int) -> None:
        """Grow capacity to at least ``columns`` (doubling), zero-filled."""
        capacity = self.buf_keys.shape[2]
        if columns <= capacity:
            return
        grow = max(columns, 2 * capacity) - capacity
        self.buf_keys = _pad_columns(self.buf_keys, grow)
        self.buf_values = _pad_columns(self.buf_values, grow)

    def get_seq_length(self) -> int:
        return self.length


def _pad_columns(t: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([t, t.new_zeros((*t.shape[:2], extra, t.shape[3]))], dim=2)


def _stack_rows(a: torch.Tensor, b: torch.Tensor, used_a: int, used_b: int, capacity: int) -> torch.Tensor:
    """``[Ba + Bb, H, capacity, D]``: the first ``used_*`` columns of ``a`` then ``b``, zeros after."""
    out = a.new_zeros((a.shape[0] + b.shape[0], a.shape[1], capacity, a.shape[3]))
    out[: a.shape[0], :, :used_a] = a[:, :, :used_a]
    out[a.shape[0]:, :, :used_b] = b[:, :, :used_b]
    return out


class BatchCache:
    """Rows of the running batch (``row_ids`` in batch order) and their padded KV."""

    def __init__(self) -> None:
        self.row_ids: list[str] = []
        self.layers: list[BufferLayer] = []
        self.valid: torch.Tensor | None = None             # [B, capacity] bool
        self.head_pad: list[torch.Tensor | None] = []      # per layer [B, H, capacity] bool or None
        self._masked: list[tuple | None] | None = None     # cached kvpress indices
        self._gaps: list[tuple[int, int, int]] | None = None  # cached row padding ranges

    def _reset(self) -> None:
        self.row_ids, self.layers, self.valid, self.head_pad, self._masked, self._gaps = [], [], None, [], None, None

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def __len__(self) -> int:
        return len(self.row_ids)

    # ---- membership ----------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, row_ids: list[str], keys: list[list[torch.Tensor]], values: list[list[torch.Tensor]],
                  head_pads: list[list[torch.Tensor | None]], spare_columns: int = 0) -> "BatchCache":
        """A batch of the given rows, built with one allocation per layer. Row ``j`` comes from its
        own per-layer ``[1, H, n_j, D]`` keys/values (``n_j`` equal across its layers) and per-layer
        ``[H, n_j]`` bool head padding (None: none in that layer); rows shorter than the longest
        get row padding. ``spare_columns``: capacity to leave for the tokens about to be fed."""
        cache = cls()
        if not row_ids:
            return cache
        lengths = [k[0].shape[2] for k in keys]
        length = max(lengths)
        capacity = max(16, length + spare_columns)
        first = keys[0][0]
        batch, heads = len(row_ids), first.shape[1]
        cache.row_ids = list(row_ids)
        cache.valid = torch.zeros((batch, capacity), dtype=torch.bool, device=first.device)
        for j, n in enumerate(lengths):
            cache.valid[j, :n] = True
        for i in range(len(keys[0])):
            buf_k = first.new_zeros((batch, heads, capacity, first.shape[3]))
            buf_v = first.new_zeros((batch, heads, capacity, values[0][i].shape[3]))
            for j, n in enumerate(lengths):
                buf_k[j, :, :n] = keys[j][i][0]
                buf_v[j, :, :n] = values[j][i][0]
            cache.layers.append(BufferLayer(buf_k, buf_v, length))
            pads = [p[i] for p in head_pads]
            if all(p is None for p in pads):
                cache.head_pad.append(None)
                continue
            pad = torch.zeros((batch, heads, capacity), dtype=torch.bool, device=first.device)
            for j, (n, p) in enumerate(zip(lengths, pads)):
                if p is not None:
                    pad[j, :, :n] = p
            cache.head_pad.append(pad)
        return cache

    def join(self, row_id: str, keys: list[torch.Tensor], values: list[torch.Tensor],
             head_pad: list[torch.Tensor | None]) -> None:
        """Add one row (the layout of ``from_rows``): one ``cat`` of the batch along rows."""
        self.merge(BatchCache.from_rows([row_id], [keys], [values], [head_pad]))

    def merge(self, other: "BatchCache") -> None:
        """Append ``other``'s rows after this batch's (``other`` must not be used afterwards).

        One allocation per layer of the joint batch (the longer length, this batch's capacity or
        just enough), each batch's used columns copied in once; padding columns are zero and
        invalid. Atomic: the new tensors are built first, so a failure leaves this batch as it was."""
        if not other.row_ids:
            return
        if not self.row_ids:
            self.row_ids, self.layers = other.row_ids, other.layers
            self.valid, self.head_pad = other.valid, other.head_pad
            self._masked = self._gaps = None
            return
        length = max(self.length, other.length)
        capacity = max(self.layers[0].buf_keys.shape[2], length + 1)
        ours, theirs = len(self.row_ids), len(other.row_ids)
        buffers = [(_stack_rows(a.buf_keys, b.buf_keys, a.length, b.length, capacity),
                    _stack_rows(a.buf_values, b.buf_values, a.length, b.length, capacity))
                   for a, b in zip(self.layers, other.layers)]
        valid = torch.cat([_pad_bool(self.valid[:, :capacity], capacity), _pad_bool(other.valid[:, :capacity], capacity)])
        heads = self.layers[0].buf_keys.shape[1]
        head_pad = [_cat_pads(None if a is None else a[..., :capacity], None if b is None else b[..., :capacity],
                              ours, theirs, heads, capacity, valid.device)
                    for a, b in zip(self.head_pad, other.head_pad)]
        for layer, (keys, values) in zip(self.layers, buffers):
            layer.buf_keys, layer.buf_values, layer.length = keys, values, length
        self.valid, self.head_pad, self.row_ids = valid, head_pad, self.row_ids + other.row_ids
        self._masked = self._gaps = None

    def leave(self, row_ids: list[str] | tuple[str, ...]) -> None:
        """Drop rows (unknown ids are ignored): one index_select along rows, then drop the columns
        that no remaining row uses."""
        gone = set(row_ids) & set(self.row_ids)
        if not gone:
            return
        keep_rows = [i for i, r in enumerate(self.row_ids) if r not in gone]
        self.row_ids = [self.row_ids[i] for i in keep_rows]
        if not keep_rows:
            self._reset()
            return
        device = self.valid.device
        rows = torch.tensor(keep_rows, device=device)
        valid = self.valid.index_select(0, rows)
        length = self.length
        used = valid[:, :length].any(dim=0)
        cols = None if bool(used.all()) else torch.nonzero(used, as_tuple=True)[0]
        for layer in self.layers:
            layer.buf_keys = _select(layer.buf_keys.index_select(0, rows), cols, length)
            layer.buf_values = _select(layer.buf_values.index_select(0, rows), cols, length)
            if cols is not None:
                layer.length = int(cols.numel())
        self.valid = _select(valid.unsqueeze(1), cols, length).squeeze(1)
        self.head_pad = [None if p is None else _select(p.index_select(0, rows), cols, length)
                         for p in self.head_pad]
        self._masked = self._gaps = None

    def release_columns(self, row_index: int, start: int, stop: int) -> None:
        """Columns ``start:stop`` hold nothing of row ``row_index`` any more (e.g. the right padding
        of a shorter question in a batched extend): they become row padding, zeroed like the rest."""
        self.valid[row_index, start:stop] = False
        for layer in self.layers:
            layer.buf_keys[row_index, :, start:stop] = 0
            layer.buf_values[row_index, :, start:stop] = 0
        self._masked = self._gaps = None

    # ---- what a forward needs ------------------------------------------------------------------
    def model_cache(self) -> Cache:
        """A transformers Cache over the buffers: a forward appends its columns in place."""
        return Cache(layers=list(self.layers))

    def attention_mask(self, new_tokens: int = 1) -> torch.Tensor:
        """``[B, length + new_tokens]`` long mask: 1 on each row's own columns and the new ones."""
        length = self.length
        for layer in self.layers:
            layer.reserve(length + new_tokens)
        capacity = self.layers[0].buf_keys.shape[2]
        self.valid = _pad_bool(self.valid, capacity)
        self.head_pad = [None if p is None else _pad_bool(p, capacity) for p in self.head_pad]
        self.valid[:, length : length + new_tokens] = True
        return self.valid[:, : length + new_tokens].long()

    def masked_key_indices(self) -> list[tuple | None]:
        """Per layer ``(batch_idx, head_idx, seq_idx)`` of head padding (kvpress's form), or None.
        Row padding is not listed: see ``row_gaps`` (and ``fake_keys``)."""
        if self._masked is None:
            length = self.length
            pads = [None if p is None else p[:, :, :length] for p in self.head_pad]
            self._masked = [None if p is None or not bool(p.any()) else torch.nonzero(p, as_tuple=True)
                            for p in pads]
        return self._masked

    def row_gaps(self) -> list[tuple[int, int, int]]:
        """Row padding as column ranges ``(row, start, stop)`` within the used columns (a few per
        row: the columns between a row's cache and the columns fed since it joined)."""
        if self._gaps is None:
            length = self.length
            gaps = []
            if self.valid is not None and length:
                pad = (~self.valid[:, :length]).to(torch.int8)
                edges = torch.diff(pad, dim=1, prepend=pad.new_zeros((pad.shape[0], 1)),
                                   append=pad.new_zeros((pad.shape[0], 1)))
                starts, stops = torch.nonzero(edges == 1).tolist(), torch.nonzero(edges == -1).tolist()
                gaps = [(row, start, stop) for (row, start), (_, stop) in zip(starts, stops)]
            self._gaps = gaps
        return self._gaps

    def has_row_padding(self) -> bool:
        return bool(self.row_gaps())

    def row_columns(self) -> list[int]:
        """Columns each row really uses (for the padded working set in stats)."""
        return [] if self.valid is None else self.valid[:, : self.length].sum(dim=1).tolist()


def _cat_pads(a: torch.Tensor | None, b: torch.Tensor | None, rows_a: int, rows_b: int, heads: int, capacity: int,
              device: torch.device) -> torch.Tensor | None:
    """Head padding of two batches stacked along rows (None: no padding in either)."""
    if a is None and b is None:
        return None
    a = torch.zeros((rows_a, heads, capacity), dtype=torch.bool, device=device) if a is None else _pad_bool(a, capacity)
    b = torch.zeros((rows_b, heads, capacity), dtype=torch.bool, device=device) if b is None else _pad_bool(b, capacity)
    return torch.cat([a, b], dim=0)


def _pad_bool(t: torch.Tensor, capacity: int) -> torch.Tensor:
    if t.shape[-1] >= capacity:
        return t
    return torch.cat([t, t.new_zeros((*t.shape[:-1], capacity - t.shape[-1]))], dim=-1)


def _select(t: torch.Tensor, cols: torch.Tensor | None, length: int) -> torch.Tensor:
    """Keep ``cols`` of the first ``length`` columns (dim 2), then the unused capacity, zeroed."""
    if cols is None:
        return t
    kept = t.index_select(2, cols)
    return torch.cat([kept, torch.zeros_like(t[:, :, length:])], dim=2)
