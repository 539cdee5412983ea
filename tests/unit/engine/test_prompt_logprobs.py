"""KVEngine.prompt_logprobs: the loglikelihood measure (echo + logprobs) against a plain forward."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.engine import ContextTooLongError
from deployments.engine.prompt import PromptError
from kvpool.press_spec import PressSpec

TEXT = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome."


def reference_logprobs(engine, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(engine.model(torch.tensor([ids])).logits[0].float(), -1)


def test_each_token_is_scored_given_the_tokens_before_it(engine) -> None:
    ids = engine.tokenizer(TEXT).input_ids
    scored = engine.prompt_logprobs(None, ids, top_k=3)
    ref = reference_logprobs(engine, ids)
    assert len(scored) == len(ids) and scored[0] is None
    for j in range(1, len(ids)):
        assert scored[j].token_id == ids[j]
        assert scored[j].logprob == pytest.approx(float(ref[j - 1, ids[j]]), abs=1e-4)
        top = ref[j - 1].topk(3)
        assert [t for t, _ in scored[j].top_logprobs] == top.indices.tolist()
        assert max(lp for _, lp in scored[j].top_logprobs) >= scored[j].logprob
    # the top-1 alternative of a greedy token is that very number (harnesses compare with ==)
    greedy = [s for s in scored[1:] if s.top_logprobs[0][0] == s.token_id]
    assert greedy and all(s.top_logprobs[0][1] == s.logprob for s in greedy)


def test_after_a_stored_context_equals_the_whole_prompt_uncompressed(engine) -> None:
    ids = engine.tokenizer(TEXT).input_ids
    whole = engine.prompt_logprobs(None, ids)
    ckv = engine.prefill(ids[:7], PressSpec())
    tail = engine.prompt_logprobs(ckv, ids[7:])
    assert tail[0] is None
    for j in range(1, len(ids) - 7):
        assert tail[j].logprob == pytest.approx(whole[7 + j].logprob, abs=1e-4)


def test_bad_prompts_are_errors(engine) -> None:
    with pytest.raises(PromptError):
        engine.prompt_logprobs(None, [])
    with pytest.raises(ContextTooLongError):
        engine.prompt_logprobs(None, [1] * (engine.max_positions + 1))
