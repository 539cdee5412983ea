"""Append tokens to a stored cache: the cache of a conversation that goes on.

``extend_cache(engine, ckv, new_ids)`` runs ``new_ids`` through the model on a private copy of
``ckv`` (positions continue at ``ckv.meta.next_position``, every new token attends to the stored,
possibly compressed, keys exactly as a question on that cache does) and returns a new
``CompressedKV`` holding the stored entries followed by the new tokens, uncompressed. The stored
``ckv`` is never mutated. Per-head (ragged) caches stay ragged: the old pruned/padded entries stay
out, the new columns are kept by every head.

Used by the Responses API (deployments/ingress/responses/): a response's stored cache is its
previous response's cache + this turn's input + its output.
"""

from __future__ import annotations

import torch

from kvpool import codecs
from kvpool.compressed_kv import CompressedKV, layer_from_mask
from deployments.engine.prompt import PromptError, PromptFrame


def extend_cache(engine, ckv: CompressedKV, new_ids: list[int]) -> CompressedKV:
    """``ckv`` + ``new_ids`` as one cache (model device). Raises PromptError on no new tokens,
    ContextTooLongError (from ``engine.check_request``) past the model's positions."""
    if not new_ids:
        raise PromptError("nothing to append to the cache")
    if ckv.meta.codec != "none":
        ckv = codecs.decode(ckv)
    _, pads = ckv.padded_layers() if ckv.is_ragged else (None, [None] * len(ckv.layers))
    start = ckv.meta.next_position
    _, cache = engine.read_after(ckv, new_ids)
    layers = []
    for i, layer in enumerate(cache.layers):
        pad = pads[i]
        if pad is not None:
            fresh = torch.zeros((pad.shape[0], len(new_ids)), dtype=torch.bool, device=pad.device)
            pad = torch.cat([pad.to(layer.keys.device), fresh], dim=1)
        layers.append(layer_from_mask(layer.keys, layer.values, pad))
    n = len(new_ids)
    return CompressedKV(tuple(layers), ckv.meta).with_meta(
        original_tokens=ckv.meta.original_tokens + n, kept_tokens=ckv.meta.kept_tokens + n,
        next_position=start + n, token_ids=tuple(ckv.meta.token_ids) + tuple(new_ids),
        prompt=PromptFrame("tokens", "").to_json())
