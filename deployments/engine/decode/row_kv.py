"""RowKV: one running generation's KV cache in buffers of its own (the ragged batch layout).

Rows of a batch never share a KV tensor: each keeps, per layer, key/value buffers
``[1, H, capacity, D]`` of which the first ``length`` columns are its cache, so a row attends to
exactly its own columns (no row padding, whatever the other rows' lengths) and joining or leaving
the batch copies no other row. Per-head ragged layouts (AdaKV, KVzip, CriticalAdaKV: a different
number of kept tokens per head) keep their per-head padding inside the row's columns, handed to
kvpress's attention patch as ``module.masked_key_indices`` exactly as the one-request path does.

Costs: a row's buffers are the stored cache copied once, with ``spare`` columns of room for the
tokens the row will feed (``adopt`` takes them as ``KVEngine.decode_layers(ckv, spare)`` pads them;
``from_layers`` copies given tensors; the one-request path copies the same cache once too); a forward
writes its new columns in place; a row outgrowing its room reallocates its own buffers with the
columns fed since it joined doubled (at least ``spare`` more) - the stored context is not doubled,
so a long context costs at most its own size plus about twice what the row generated. Works on
any device (buffers live where the given tensors live).
"""

from __future__ import annotations

import torch


class RowKV:
    """Per-layer key/value buffers of one row; ``length``: columns in use (the same in every layer)."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor],
                 masked: list[tuple | None], length: int, spare: int = 1):
        self.keys, self.values, self.masked, self.length = keys, values, masked, length
        self.context, self.spare = length, max(spare, 1)  # columns at join; the growth step

    @classmethod
    def from_layers(cls, keys: list[torch.Tensor], values: list[torch.Tensor], masked: list[tuple | None],
                    spare: int) -> "RowKV":
        """A row from its stored cache as ``KVEngine.decode_layers`` gives it: per-layer
        ``[1, H, n, D]`` keys/values (``n`` equal across layers) and kvpress masked key indices
        (None: no head padding in that layer); ``spare``: columns of room for the tokens it will
        feed. Raises ValueError on layers of different lengths."""
        lengths = {k.shape[2] for k in keys} | {v.shape[2] for v in values}
        if len(lengths) != 1:
            raise ValueError(f"a row's layers must have one length, got {sorted(lengths)}")
        n = lengths.pop()
        capacity = n + max(spare, 1)
        bufs_k, bufs_v = [], []
        for k, v in zip(keys, values):
            buf_k = k.new_empty((1, k.shape[1], capacity, k.shape[3]))
            buf_v = v.new_empty((1, v.shape[1], capacity, v.shape[3]))
            buf_k[:, :, :n] = k
            buf_v[:, :, :n] = v
            bufs_k.append(buf_k)
            bufs_v.append(buf_v)
        return cls(bufs_k, bufs_v, list(masked), n, spare)

    @classmethod
    def adopt(cls, keys: list[torch.Tensor], values: list[torch.Tensor], masked: list[tuple | None],
              spare: int) -> "RowKV":
        """A row owning the given per-layer ``[1, H, n + spare, D]`` buffers (``KVEngine.decode_layers``
        with ``spare``: the stored cache in the first ``n`` columns, room after them) - no copy."""
        widths = {k.shape[2] for k in keys} | {v.shape[2] for v in values}
        if len(widths) != 1 or min(widths) <= spare:
            raise ValueError(f"a row's buffers must share one width above spare={spare}, got {sorted(widths)}")
        return cls(list(keys), list(values), list(masked), widths.pop() - spare, spare)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Write ``[1, H, t, D]`` new keys/values at columns ``length : length + t`` of ``layer``
        (not yet counted in ``length``: ``commit`` does that once every layer is written)."""
        end = self.length + keys.shape[2]
        if end > self.keys[layer].shape[2]:
            columns = end + max(self.spare, end - self.context)  # double what was fed since joining
            self.keys[layer] = _grow(self.keys[layer], self.length, columns)
            self.values[layer] = _grow(self.values[layer], self.length, columns)
        self.keys[layer][:, :, self.length:end] = keys
        self.values[layer][:, :, self.length:end] = values

    def view(self, layer: int, new: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[1, H, length + new, D]`` views of ``layer``'s keys/values: the cache and ``new`` columns
        just written."""
        end = self.length + new
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def commit(self, new: int) -> None:
        """Count ``new`` written columns as the row's (after a forward succeeded in every layer)."""
        self.length += new


def _grow(buf: torch.Tensor, used: int, columns: int) -> torch.Tensor:
    """A buffer of ``columns`` columns holding ``buf``'s first ``used``."""
    out = buf.new_empty((*buf.shape[:2], columns, buf.shape[3]))
    out[:, :, :used] = buf[:, :, :used]
    return out
