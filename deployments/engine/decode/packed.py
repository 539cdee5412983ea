"""One packed forward over rows of different lengths: the ragged batch's attention.

A step feeds every row's new tokens as ONE packed sequence, ``input_ids``/``position_ids`` of shape
``[1, N]`` (N = one token per decoding row + each joiner's question), as vLLM and SGLang pack
varlen batches: the linear layers, norms and RoPE run once over all N tokens, so a joiner's
question (its extend / prefill chunk) shares the forward with the decoding rows. Only attention
needs to know the rows apart, and it runs per row on the row's own ``RowKV`` buffers:

- ``PackedStep`` is the forward's transformers ``Cache``: ``update`` writes each row's slice of the
  new keys/values into that row's buffers (transformers calls it in every attention layer);
- ``install()`` wraps transformers' attention functions once; a forward passed
  ``kvfleet_packed=<PackedStep>`` has its attention computed row by row: row ``r``'s queries
  against its own ``length + t_r`` columns, with the causal mask the one-request path builds for
  ``t_r > 1`` tokens and none for one token, and its per-head padding as kvpress masked keys.
  Each row's attention call is therefore the one-request path's call (same function, same
  shapes, same mask), and no row reads another row's columns or any padding.

The model must be given ``attention_mask=packed_mask(device)`` (a 4D placeholder that transformers'
mask builders pass through untouched, so no ``[N, kv]`` mask is built) and
``cache_position=arange(N)``. A forward that raises leaves every row's ``length`` unchanged
(``commit`` counts the new columns only after success), and ``commit`` raises if some layer wrote
keys but was not attended here (an attention function outside transformers' registry, e.g.
``eager``, would have attended over the packed tokens alone): ``unsupported_reason`` says up front
which models cannot use the packed path (their generations decode one request per forward).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import kvpress  # noqa: F401 - patches the attention functions first: install() must wrap kvpress's patch
import torch
from transformers.cache_utils import Cache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from deployments.engine.decode.row_kv import RowKV

_lock = threading.Lock()
_installed = False


class PackedStep(Cache):
    """Rows and their token counts in one packed forward; the forward's transformers Cache."""

    def __init__(self, rows: list[RowKV], counts: list[int]):
        super().__init__(layers=[])
        if len(rows) != len(counts) or not rows or min(counts) < 1:
            raise ValueError("a packed step needs at least one row and one token per row")
        self.rows, self.counts = rows, counts
        bounds = list(itertools.accumulate(counts, initial=0))
        self.spans = list(zip(bounds[:-1], bounds[1:]))
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self._written: set[int] = set()
        self._attended: set[int] = set()

    @property
    def tokens(self) -> int:
        return self.spans[-1][1]

    # ---- the Cache interface the model uses ----------------------------------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
               cache_kwargs: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self._written.add(layer_idx)
        for row, (start, stop) in zip(self.rows, self.spans):
            row.write(layer_idx, key_states[:, :, start:stop], value_states[:, :, start:stop])
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0

    # ---- attention -----------------------------------------------------------------------------
    def attend(self, func: Callable, module: Any, query: torch.Tensor, dropout: float,
               kwargs: dict[str, Any]) -> tuple[torch.Tensor, None]:
        """``query`` ``[1, heads, N, D]`` -> ``[1, N, heads, D]``: each row's queries against its
        own columns, by ``func`` (the wrapped attention function, kvpress's patch inside)."""
        layer = module.layer_idx
        self._attended.add(layer)
        outs = []
        saved = getattr(module, "masked_key_indices", None)
        try:
            for row, (start, stop) in zip(self.rows, self.spans):
                keys, values = row.view(layer, stop - start)
                module.masked_key_indices = row.masked[layer]
                mask = None if stop - start == 1 else self._causal_mask(row.length, stop - start, query.device)
                out, _ = func(module, query[:, :, start:stop], keys, values, mask, dropout=dropout, **kwargs)
                outs.append(out)
        finally:
            module.masked_key_indices = saved
        return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)), None

    def _causal_mask(self, past: int, new: int, device: torch.device) -> torch.Tensor:
        """``[1, 1, new, past + new]`` bool: query ``i`` sees columns ``<= past + i`` (the mask
        transformers' ``sdpa_mask`` builds for an extend after ``past`` cached tokens)."""
        key = (past, new)
        mask = self._masks.get(key)
        if mask is None:
            cols = torch.arange(past + new, device=device)
            rows = torch.arange(past, past + new, device=device)
            mask = (cols[None, :] <= rows[:, None])[None, None]
            self._masks[key] = mask
        return mask

    def commit(self) -> None:
        """Count every row's new columns (call once the forward has returned). Raises RuntimeError
        (and counts nothing) if a layer's attention did not run per row."""
        if self._written != self._attended:
            missed = sorted(self._written - self._attended)
            raise RuntimeError(f"layers {missed} were not attended per row: their attention function bypasses "
                               "transformers' registry (packed decode needs a registered one, e.g. sdpa)")
        for row, count in zip(self.rows, self.counts):
            row.commit(count)


_masks: dict[torch.device, torch.Tensor] = {}


def unsupported_reason(config: Any) -> str | None:
    """Why a model (its transformers ``config``) cannot decode packed, or None if it can.

    Packed attention calls ``sdpa`` per row with a boolean mask for extends: ``eager`` is not in
    transformers' registry (models call their own eager function directly, bypassing the wrapper),
    flash / flex / paged kernels take no 4D boolean mask and read packed ``position_ids`` as
    sequence boundaries. It attends to all of a row's columns (sliding-window layers would need
    their window applied per row)."""
    implementation = getattr(config, "_attn_implementation", None)
    if implementation != "sdpa":
        return f"attention implementation {implementation!r}: packed decode runs on sdpa only"
    sliding = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    if sliding or "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return "the model has sliding-window attention layers (packed attention has no per-row window)"
    return None


def packed_mask(device: torch.device) -> torch.Tensor:
    """``[1, 1, 1, 1]`` placeholder mask: transformers passes a 4D mask through untouched, and the
    packed attention builds each row's own mask, so nothing else is built."""
    mask = _masks.get(device)
    if mask is None:
        mask = _masks[device] = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=device)
    return mask


def install() -> None:
    """Wrap transformers' registered attention functions once (idempotent, thread-safe); a call
    without ``kvfleet_packed`` passes straight through."""
    global _installed
    with _lock:
        if _installed:
            return
        for name, func in list(ALL_ATTENTION_FUNCTIONS.items()):
            ALL_ATTENTION_FUNCTIONS[name] = _packed(func)
        _installed = True


def _packed(func: Callable) -> Callable:
    def wrapper(module: Any, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
        step = kwargs.pop("kvfleet_packed", None)
        if step is None:
            return func(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
        return step.attend(func, module, query, dropout, kwargs)

    wrapper.kvfleet_inner = func  # what this wraps (kvpress's patch, for sdpa): checked by tests
    return wrapper
