"""Odd but well-formed JSON values that used to reach a 500 (found while fuzzing, issue 19): a
message role that is not a string, a seed beyond 64 bits."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.prompt import PromptError, normalize_messages
from deployments.engine.sampling import SamplingParams, TokenSampler


@pytest.mark.parametrize("role", [["user"], {"a": 1}, 3, None])
def test_a_role_that_is_not_a_string_is_a_prompt_error(role):
    with pytest.raises(PromptError, match="role"):
        normalize_messages([{"role": role, "content": "hi"}])


@pytest.mark.parametrize("seed", [10**30, -(10**30), 2**64, -1])
def test_any_integer_seed_samples_and_is_deterministic(seed):
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0, seed=seed)
    first = [TokenSampler(params, torch.device("cpu"))(logits).token_id for _ in range(3)]
    again = [TokenSampler(params, torch.device("cpu"))(logits).token_id for _ in range(3)]
    assert first == again
