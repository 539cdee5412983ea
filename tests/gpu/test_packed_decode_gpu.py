"""Continuous batching on a CUDA device: rows of an uncompressed, a knorm and a kvzip (per-head
ragged) cache decode together through the packed forward with every row's KV on the device, and
each row's greedy tokens are the one-request path's. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.decode import BatchConfig, DecodeLoop
from deployments.engine.sampling import SamplingParams
from kvpool.press_spec import NO_PRESS, PressSpec
from tests.conftest import document
from tests.unit.engine.decode.test_batched_parity import Collector

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def cuda_engine():
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    return KVEngine(load_model(ModelConfig(device="cuda")), EMBEDDED_MODEL_ID)


def test_packed_decode_on_cuda_matches_one_request_decode(cuda_engine):
    engine = cuda_engine
    params = SamplingParams(max_tokens=12, ignore_eos=True)
    caches = [engine.prefill(document(4), NO_PRESS),
              engine.prefill(document(6), PressSpec(name="knorm", compression_ratio=0.5)),
              engine.prefill(document(5), PressSpec(name="kvzip", compression_ratio=0.5))]
    assert all(c.device.type == "cuda" for c in caches) and caches[2].is_ragged
    work = [(c, engine.question_ids(c, q), params)
            for c, q in zip(caches, ["What is the secret code?", "Where was Alice born?", "Summarize."])]
    expected = [[s.token.token_id for s in engine.generate_ids(*job) if s.token] for job in work]
    loop = DecodeLoop(engine, BatchConfig(max_batch_size=8))
    try:
        collectors = [Collector() for _ in work]
        with engine._lock:  # all join in one step
            for job, c in zip(work, collectors):
                loop.submit(*job, c)
        for c in collectors:
            assert c.done.wait(300) and c.error is None
        assert [c.tokens for c in collectors] == expected
    finally:
        loop.close()
