"""Synthetic CompressedKV caches from seeded random tensors, for tests, demos and benchmarks.

They have the exact shapes, dtypes, layouts and metadata of a real pruned cache; only the
numbers are random. Pruning is simulated the way kvpress's scorer presses count:
``kept = int(original_tokens * (1 - compression_ratio))`` tokens per head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV
from kvpool.press_spec import PressSpec

SYNTHETIC_VOCAB = 32_000


def kept_per_head(original_tokens: int, compression_ratio: float) -> int:
    """Tokens a scorer press keeps per head (at least one)."""
    return max(1, int(original_tokens * (1 - compression_ratio)))


def synthetic_kv(*, num_layers: int = 4, num_kv_heads: int = 3, head_dim: int = 64, original_tokens: int = 128,
                 compression_ratio: float = 0.0, ragged: bool = False, dtype: torch.dtype = torch.float32,
                 seed: int = 0, model_id: str = "synthetic-model", token_ids: tuple[int, ...] | None = None,
                 press: PressSpec | None = None, query_agnostic: bool = True,
                 layer_compression_ratios: Sequence[float] | None = None,
                 device: str | torch.device = "cpu") -> CompressedKV:
    """A random cache shaped like ``original_tokens`` pruned at ``compression_ratio``.

    Dense: every layer is ``[heads, kept, head_dim]``. Ragged: per-head lengths vary around
    ``kept`` (same total), as an AdaKV-style press would leave them. ``token_ids`` default to
    seeded random ids of length ``original_tokens``; ``press`` defaults to ``knorm`` at the ratio
    (``none`` at ratio 0). ``layer_compression_ratios`` (one per layer) overrides the ratio per layer,
    as pyramid-style presses do.
    """
    generator = torch.Generator().manual_seed(seed)
    ratios = [compression_ratio] * num_layers if layer_compression_ratios is None else list(layer_compression_ratios)
    if len(ratios) != num_layers:
        raise ValueError(f"layer_compression_ratios has {len(ratios)} values for {num_layers} layers")
    layers = []
    for ratio in ratios:
        kept = kept_per_head(original_tokens, ratio)
        lengths = _ragged_lengths(kept, original_tokens, num_kv_heads, generator) if ragged else None
        rows = sum(lengths) if lengths else None
        shape = (rows, head_dim) if lengths else (num_kv_heads, kept, head_dim)
        keys = torch.randn(shape, generator=generator).to(dtype)
        values = torch.randn(shape, generator=generator).to(dtype)
        layers.append(LayerKV(keys.to(device), values.to(device), lengths))
    if token_ids is None:
        token_ids = tuple(torch.randint(0, SYNTHETIC_VOCAB, (original_tokens,), generator=generator).tolist())
    if press is None:
        press = PressSpec(name="knorm", compression_ratio=compression_ratio) if compression_ratio else PressSpec()
    entries = sum(layer.kept_entries() for layer in layers)
    meta = KVMeta(model_id=model_id, press=press.model_dump(mode="json"), original_tokens=original_tokens,
                  kept_tokens=entries / (num_layers * num_kv_heads), next_position=original_tokens,
                  dtype=str(dtype).removeprefix("torch."), num_layers=num_layers, num_kv_heads=num_kv_heads,
                  head_dim=head_dim, query_agnostic=query_agnostic, token_ids=tuple(token_ids))
    return CompressedKV(tuple(layers), meta)


def _ragged_lengths(kept: int, original_tokens: int, heads: int, generator: torch.Generator) -> tuple[int, ...]:
    """``heads`` lengths in [1, original_tokens] summing to ``kept * heads``."""
    lengths = [kept] * heads
    for head in range(0, heads - 1, 2):  # move tokens between pairs of heads: the total is unchanged
        room = min(lengths[head] - 1, original_tokens - lengths[head + 1])
        shift = int(torch.randint(0, room + 1, (1,), generator=generator)) if room > 0 else 0
        lengths[head] -= shift
        lengths[head + 1] += shift
    return tuple(lengths)
