"""Re-compression: prune a stored cache to a tighter ratio instead of dropping it.

The pool can't import the engine, so re-compression is an injected callable::

    Recompressor = Callable[[CompressedKV, float], CompressedKV]

Contract: ``recompressor(ckv, compression_ratio)`` gets a codec ``"none"`` cache and the target
ratio *relative to the original context* (fraction of ``meta.original_tokens`` to drop, in
[0, 1)), and returns a codec ``"none"`` cache holding fewer tokens, with ``meta.kept_tokens`` and
``meta.press`` updated. It must not mutate its input. The engine may provide one that re-runs a
real press; ``knorm_recompressor`` below is a complete one in pure torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from kvpool import codecs
from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV
from kvpool.errors import CodecError, RecompressError
from kvpool.press_spec import PressSpec
from kvpool.synthetic import kept_per_head

Recompressor = Callable[[CompressedKV, float], CompressedKV]


def current_ratio(meta: KVMeta) -> float:
    """Fraction of the original tokens a cache has already dropped (per head, on average)."""
    if meta.original_tokens <= 0:
        return 0.0
    return max(0.0, 1.0 - meta.kept_tokens / meta.original_tokens)


def knorm_recompressor(ckv: CompressedKV, compression_ratio: float) -> CompressedKV:
    """Keep, per head, the key vectors with the *smallest* L2 norm (kvpress ``KnormPress``'s score).

    Dense layers keep ``int(original_tokens * (1 - compression_ratio))`` tokens per head. Ragged
    layers shrink every head by the same factor (at least one entry per non-empty head). Kept
    entries stay in their original order. A cache already at or below the target is returned
    as is. ``meta.press`` becomes ``composed[<old press>, knorm(stage ratio)]``.
    Raises RecompressError on a ratio outside [0, 1), CodecError on an encoded cache.
    """
    if not 0.0 <= compression_ratio < 1.0:
        raise RecompressError(f"compression_ratio must be in [0, 1), got {compression_ratio}")
    if ckv.meta.codec != "none":
        raise CodecError(f"recompress needs a decoded cache, got codec {ckv.meta.codec!r}; "
                         "call kvpool.codecs.decode() first")
    target = kept_per_head(ckv.meta.original_tokens, compression_ratio)
    if target >= ckv.meta.kept_tokens:
        return ckv
    fraction = target / ckv.meta.kept_tokens
    layers = tuple(_prune_layer(layer, target, fraction) for layer in ckv.layers)
    entries = sum(layer.kept_entries() for layer in layers)
    kept_tokens = entries / (ckv.meta.num_layers * ckv.meta.num_kv_heads)
    press = _tightened_press(ckv.meta.press, stage_ratio=1.0 - kept_tokens / ckv.meta.kept_tokens)
    return replace(ckv, layers=layers).with_meta(kept_tokens=kept_tokens, press=press)


def _prune_layer(layer: LayerKV, dense_keep: int, fraction: float) -> LayerKV:
    if layer.head_lengths is None:
        keep = _lowest_norm_rows(layer.keys, min(dense_keep, layer.keys.shape[1]))
        index = keep.unsqueeze(-1).expand(-1, -1, layer.keys.shape[-1])
        return LayerKV(layer.keys.gather(1, index), layer.values.gather(1, index))
    lengths, key_parts, value_parts = [], [], []
    for keys, values in zip(layer.keys.split(layer.head_lengths), layer.values.split(layer.head_lengths)):
        n = min(keys.shape[0], max(1, round(keys.shape[0] * fraction))) if keys.shape[0] else 0
        keep = _lowest_norm_rows(keys, n)
        key_parts.append(keys[keep])
        value_parts.append(values[keep])
        lengths.append(n)
    return LayerKV(torch.cat(key_parts).contiguous(), torch.cat(value_parts).contiguous(), tuple(lengths))


def _lowest_norm_rows(keys: torch.Tensor, n: int) -> torch.Tensor:
    """Indices (ascending) of the ``n`` rows with the smallest key norm along the token axis (-2)."""
    norms = torch.linalg.vector_norm(keys, dim=-1, dtype=torch.promote_types(keys.dtype, torch.float32))
    return norms.topk(n, dim=-1, largest=False).indices.sort(dim=-1).values


def _tightened_press(press: dict, stage_ratio: float) -> dict:
    stage = PressSpec(name="knorm", compression_ratio=round(min(max(stage_ratio, 0.0), 0.999999), 6))
    old = PressSpec.model_validate(press) if press else PressSpec()
    if old.name == "none":
        return stage.model_dump(mode="json")
    if old.name == "composed":
        return old.model_copy(update={"presses": (*old.presses, stage)}).model_dump(mode="json")
    return PressSpec(name="composed", presses=(old, stage)).model_dump(mode="json")


def recompress_in_codec(recompressor: Recompressor, ckv: CompressedKV, compression_ratio: float) -> CompressedKV:
    """Run ``recompressor`` on a cache stored with any codec: decode, re-prune, re-encode.

    Returns ``ckv`` itself when the recompressor changed nothing. Raises RecompressError if the
    recompressor breaks its contract (encoded output, other layer count).
    """
    decoded = codecs.decode(ckv)
    pruned = recompressor(decoded, compression_ratio)
    if pruned is decoded:
        return ckv
    if pruned.meta.codec != "none" or pruned.meta.num_layers != ckv.meta.num_layers:
        raise RecompressError(f"recompressor {recompressor!r} must return a codec 'none' cache with "
                              f"{ckv.meta.num_layers} layers, got codec {pruned.meta.codec!r} with "
                              f"{pruned.meta.num_layers}")
    return codecs.encode(pruned, ckv.meta.codec)
