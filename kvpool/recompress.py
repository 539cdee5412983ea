"""Re-compression: prune a stored cache to a tighter ratio instead of dropping it.

The pool can't import the engine, so re-compression is an injected callable::

    Recompressor = Callable[[CompressedKV, float], CompressedKV]

Contract: ``recompressor(ckv, compression_ratio)`` gets a codec ``"none"`` cache and the target
ratio *relative to the original context* (fraction of ``meta.original_tokens`` to drop, in
[0, 1)), and returns a codec ``"none"`` cache holding fewer tokens, with ``meta.kept_tokens`` and
``meta.press`` updated. It must not mutate its input. The engine may provide one that re-runs a
real press; the ones here are complete in pure torch.

A stored cache has no context and no model left to replay, so only presses that score from the
stored keys alone can re-prune it: ``RECOMPRESS_SCORERS`` holds them by their kvpress name -
``knorm`` (kvpress ``KnormPress``: keep the smallest key norms) and ``keydiff`` (kvpress
``KeyDiffPress``, arXiv:2504.15364: keep the keys least similar to the head's mean key
direction). ``recompressor_for(name)`` builds one; ``RecompressConfig.press`` names the one a
pool uses, and its default is the cache-only scorer the committed quality benchmark ranks best
(tests/unit/benchmarks/test_default_press.py).
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


Scorer = Callable[[torch.Tensor], torch.Tensor]


def _knorm_score(keys: torch.Tensor) -> torch.Tensor:
    """kvpress KnormPress.score: minus the L2 norm of each key (``[..., T, D] -> [..., T]``)."""
    return -torch.linalg.vector_norm(keys, dim=-1, dtype=torch.promote_types(keys.dtype, torch.float32))


def _keydiff_score(keys: torch.Tensor) -> torch.Tensor:
    """kvpress KeyDiffPress.score: minus the cosine similarity of each key to the mean of the
    head's normalized keys (``[..., T, D] -> [..., T]``)."""
    keys = keys.float()
    anchor = torch.nn.functional.normalize(keys, p=2, dim=-1).mean(dim=-2, keepdim=True)
    return -torch.nn.functional.cosine_similarity(keys, anchor, dim=-1)


RECOMPRESS_SCORERS: dict[str, Scorer] = {"knorm": _knorm_score, "keydiff": _keydiff_score}


def recompressor_for(name: str) -> Recompressor:
    """The recompressor that re-prunes with the cache-only scorer ``name``; RecompressError
    naming the valid ones otherwise."""
    if name not in RECOMPRESS_SCORERS:
        raise RecompressError(f"unknown re-compression press {name!r}; valid (score from stored keys alone): "
                              f"{', '.join(RECOMPRESS_SCORERS)}")

    def recompressor(ckv: CompressedKV, compression_ratio: float) -> CompressedKV:
        return _recompress(ckv, compression_ratio, name)

    recompressor.__name__ = f"{name}_recompressor"
    return recompressor


def knorm_recompressor(ckv: CompressedKV, compression_ratio: float) -> CompressedKV:
    """Keep, per head, the key vectors with the *smallest* L2 norm (kvpress ``KnormPress``'s score).

    Dense layers keep ``int(original_tokens * (1 - compression_ratio))`` tokens per head. Ragged
    layers shrink every head by the same factor (at least one entry per non-empty head). Kept
    entries stay in their original order. A cache already at or below the target is returned
    as is. ``meta.press`` becomes ``composed[<old press>, knorm(stage ratio)]``.
    Raises RecompressError on a ratio outside [0, 1), CodecError on an encoded cache.
    """
    return _recompress(ckv, compression_ratio, "knorm")


def keydiff_recompressor(ckv: CompressedKV, compression_ratio: float) -> CompressedKV:
    """As ``knorm_recompressor`` with kvpress ``KeyDiffPress``'s score (keep the keys least
    similar to the head's mean key); ``meta.press`` gains a ``keydiff`` stage."""
    return _recompress(ckv, compression_ratio, "keydiff")


def _recompress(ckv: CompressedKV, compression_ratio: float, scorer: str) -> CompressedKV:
    if not 0.0 <= compression_ratio < 1.0:
        raise RecompressError(f"compression_ratio must be in [0, 1), got {compression_ratio}")
    if ckv.meta.codec != "none":
        raise CodecError(f"recompress needs a decoded cache, got codec {ckv.meta.codec!r}; "
                         "call kvpool.codecs.decode() first")
    target = kept_per_head(ckv.meta.original_tokens, compression_ratio)
    if target >= ckv.meta.kept_tokens:
        return ckv
    fraction = target / ckv.meta.kept_tokens
    score = RECOMPRESS_SCORERS[scorer]
    layers = tuple(_prune_layer(layer, target, fraction, score) for layer in ckv.layers)
    entries = sum(layer.kept_entries() for layer in layers)
    kept_tokens = entries / (ckv.meta.num_layers * ckv.meta.num_kv_heads)
    press = _tightened_press(ckv.meta.press, 1.0 - kept_tokens / ckv.meta.kept_tokens, scorer)
    return replace(ckv, layers=layers).with_meta(kept_tokens=kept_tokens, press=press)


def _prune_layer(layer: LayerKV, dense_keep: int, fraction: float, score: Scorer) -> LayerKV:
    if layer.head_lengths is None:
        keep = _top_rows(layer.keys, min(dense_keep, layer.keys.shape[1]), score)
        index = keep.unsqueeze(-1).expand(-1, -1, layer.keys.shape[-1])
        return LayerKV(layer.keys.gather(1, index), layer.values.gather(1, index))
    lengths, key_parts, value_parts = [], [], []
    for keys, values in zip(layer.keys.split(layer.head_lengths), layer.values.split(layer.head_lengths)):
        n = min(keys.shape[0], max(1, round(keys.shape[0] * fraction))) if keys.shape[0] else 0
        keep = _top_rows(keys, n, score)
        key_parts.append(keys[keep])
        value_parts.append(values[keep])
        lengths.append(n)
    return LayerKV(torch.cat(key_parts).contiguous(), torch.cat(value_parts).contiguous(), tuple(lengths))


def _top_rows(keys: torch.Tensor, n: int, score: Scorer) -> torch.Tensor:
    """Indices (ascending) of the ``n`` rows with the highest ``score`` along the token axis (-2)."""
    return score(keys).topk(n, dim=-1).indices.sort(dim=-1).values


def _tightened_press(press: dict, stage_ratio: float, scorer: str = "knorm") -> dict:
    stage = PressSpec(name=scorer, compression_ratio=round(min(max(stage_ratio, 0.0), 0.999999), 6))
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
