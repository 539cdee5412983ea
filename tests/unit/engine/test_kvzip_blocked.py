"""BlockedKVzipPress scores exactly as kvpress's KVzipPress (deployments/engine/presses/kvzip_blocked.py).

``max_attention`` against the stock formula in float64 on random tensors; then the whole press on
the real model in float32, one chunk and several: same scores (to float rounding), same pruned
keys. In bfloat16 the two differ by kvpress's bfloat16 softmax (relative error ~1e-2), which the
last test bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from kvpress import KVzipPress
from transformers import DynamicCache

from deployments.engine.attention_masks import AttentionMasks
from deployments.engine.presses.kvzip_blocked import BlockedKVzipPress, max_attention
from tests.conftest import document


def stock_max_attention(queries, keys, first, count):
    """kvpress's _compute_cross_attention + score_kvzip's max, in float64."""
    q_len = queries.shape[2]
    weights = torch.matmul(queries.double(), keys.double().unsqueeze(1).transpose(-2, -1))
    future = torch.ones(q_len, q_len, dtype=torch.bool).triu_(1)
    weights[..., -q_len:, -q_len:].masked_fill_(future, -math.inf)
    return weights.softmax(-1)[..., first:first + count].amax(dim=(1, 2))


@pytest.mark.parametrize("q_len, past, first, count, block", [
    (70, 40, 4, 30, 32),     # q_len not a multiple of the block
    (16, 16, 0, 16, 32),     # one partial block, no sinks
    (100, 260, 4, 256, 7),   # a chunk of a longer context
    (33, 12, 2, 5, 1),       # one query per block
])
def test_max_attention_is_the_stock_formula(q_len, past, first, count, block):
    generator = torch.Generator().manual_seed(q_len + past)
    queries = torch.randn(3, 2, q_len, 16, generator=generator) / 4
    keys = torch.randn(3, past + q_len, 16, generator=generator) * 2
    ours = max_attention(queries, keys, first, count, block_rows=block)
    assert ours.dtype == torch.float32 and ours.shape == (3, count)
    torch.testing.assert_close(ours.double(), stock_max_attention(queries, keys, first, count), rtol=1e-5, atol=1e-9)


def recorded(press_class: type, model, ids: torch.Tensor, **fields):
    """(float32 scores [layers, 1, kv_heads, T], per-layer pruned (head, position) sets) of one
    compression of ``ids`` by ``press_class``."""
    seen = {}

    @dataclass
    class Recording(press_class):
        def compress_post(self, model):
            seen["scores"] = self.score_val.float().clone()
            super().compress_post(model)

    masks = AttentionMasks(model)
    try:
        with torch.no_grad(), Recording(compression_ratio=0.25, **fields)(model):
            model.model(input_ids=ids, past_key_values=DynamicCache())
        pruned = [set(zip(m.masked_key_indices[1].tolist(), m.masked_key_indices[2].tolist())) for m in masks.modules]
    finally:
        for module in masks.modules:
            module.masked_key_indices = None
    return seen["scores"], pruned


@pytest.mark.parametrize("chunk_size", [2048, 96])  # one reconstruction chunk; four
def test_same_scores_and_pruned_keys_as_kvpress_in_float32(loaded_models, chunk_size):
    loaded = loaded_models("float32")
    ids = loaded.tokenizer(document(18), return_tensors="pt").input_ids
    stock, stock_pruned = recorded(KVzipPress, loaded.model, ids, chunk_size=chunk_size)
    ours, ours_pruned = recorded(BlockedKVzipPress, loaded.model, ids, chunk_size=chunk_size)
    assert stock.shape == ours.shape and ours.shape[-1] == ids.shape[1]
    torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-7)
    assert ours_pruned == stock_pruned


def test_bfloat16_scores_differ_from_kvpress_only_by_its_bfloat16_softmax(loaded_models):
    loaded = loaded_models("bfloat16")
    ids = loaded.tokenizer(document(18), return_tensors="pt").input_ids
    stock, stock_pruned = recorded(KVzipPress, loaded.model, ids)
    ours, ours_pruned = recorded(BlockedKVzipPress, loaded.model, ids)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, stock, rtol=0.1, atol=1e-4)
    same = sum(len(a & b) for a, b in zip(ours_pruned, stock_pruned)) / sum(map(len, stock_pruned))
    assert same > 0.97
