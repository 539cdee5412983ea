"""Prompt log-probs (echo + logprobs) and the top_k / min_p filters on a CUDA device: the same
numbers as on the CPU (within float tolerance), and the filters never draw a dropped token.
Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.sampling import SamplingParams, TokenSampler
from kvpool.press_spec import PressSpec

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
TEXT = "The capital of France is Paris. The capital of Germany is Berlin."


@pytest.fixture(scope="module")
def cuda_engine():
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    return KVEngine(load_model(ModelConfig(device="cuda")), EMBEDDED_MODEL_ID)


def test_prompt_logprobs_on_cuda_match_the_cpu(cuda_engine, engine):
    ids = engine.tokenizer(TEXT).input_ids
    cpu, gpu = engine.prompt_logprobs(None, ids, 2), cuda_engine.prompt_logprobs(None, ids, 2)
    assert gpu[0] is None and [s.token_id for s in gpu[1:]] == ids[1:]
    assert [s.logprob for s in gpu[1:]] == pytest.approx([s.logprob for s in cpu[1:]], abs=1e-3)
    ckv = cuda_engine.prefill(ids[:6], PressSpec(name="knorm", compression_ratio=0.5))
    assert ckv.device.type == "cuda" and len(cuda_engine.prompt_logprobs(ckv, ids[6:])) == len(ids) - 6


def test_top_k_and_min_p_on_cuda():
    logits = torch.tensor([4.0, 3.9, 0.0, -1.0], device="cuda")
    for params, allowed in ((dict(top_k=2), {0, 1}), (dict(min_p=0.5), {0, 1})):
        sampler = TokenSampler(SamplingParams(temperature=1.5, seed=3, **params), torch.device("cuda"))
        assert {sampler(logits).token_id for _ in range(200)} <= allowed
