"""The engine in bfloat16: caches are stored in the model's dtype, a cache of another dtype is
refused by the engine and converted by a pool that knows the model's dtype (a migration between
replicas that run different dtypes)."""

from __future__ import annotations

import torch

import pytest

from deployments.engine.sampling import SamplingParams
from kvpool import KVPool, KVPoolConfig, PressSpec, SessionId
from kvpool.errors import KVFleetError
from tests.conftest import document

KNORM = PressSpec(name="knorm", compression_ratio=0.5)
QUESTION = "What is the secret code of the vault?"


def test_caches_are_stored_in_the_model_dtype_at_half_the_bytes(engines):
    f32, bf16 = (engines(d).prefill(document(6), KNORM) for d in ("float32", "bfloat16"))
    assert f32.meta.dtype == "float32" and bf16.meta.dtype == "bfloat16"
    assert bf16.layers[0].keys.dtype == torch.bfloat16 and bf16.nbytes * 2 == f32.nbytes


def test_a_cache_of_another_dtype_is_refused_then_converted_by_the_pool(engines):
    source, target = engines("float32"), engines("bfloat16")
    ckv = source.prefill(document(6), KNORM)
    with pytest.raises(KVFleetError, match="cache is in float32, this engine's model runs in bfloat16"):
        target.answer(ckv, QUESTION, SamplingParams(max_tokens=4))
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 28), dtype=target.dtype)
    stored = pool.get(pool.put(ckv, SessionId("moved")), decoded=True)
    text, tokens, _ = target.answer(stored, QUESTION, SamplingParams(max_tokens=12))
    assert tokens and "7341" in text
