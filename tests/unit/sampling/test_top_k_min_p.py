"""top_k and min_p (vLLM SamplingParams): the sampler never draws a token the filter drops."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.sampling import SamplingParams, TokenSampler

LOGITS = torch.tensor([4.0, 3.9, 3.8, 0.0, -1.0, -2.0])  # three likely tokens, three unlikely


def draws(**params: float) -> set[int]:
    sampler = TokenSampler(SamplingParams(temperature=1.5, seed=7, **params), torch.device("cpu"))
    return {sampler(LOGITS).token_id for _ in range(300)}


def test_without_filters_unlikely_tokens_are_drawn() -> None:
    assert draws() - {0, 1, 2}  # the filters below are what removes them


@pytest.mark.parametrize("k, allowed", [(1, {0}), (2, {0, 1}), (3, {0, 1, 2})])
def test_top_k_keeps_the_k_most_likely(k: int, allowed: set[int]) -> None:
    assert draws(top_k=k) == allowed


def test_min_p_drops_tokens_below_a_fraction_of_the_top_probability() -> None:
    probs = torch.softmax(LOGITS / 1.5, -1)
    allowed = {i for i, p in enumerate(probs.tolist()) if p >= 0.5 * float(probs.max())}
    assert allowed == {0, 1, 2}
    assert draws(min_p=0.5) == allowed


def test_top_k_zero_means_all_and_bad_values_are_rejected() -> None:
    assert SamplingParams(top_k=0).top_k == 0
    with pytest.raises(ValueError):
        SamplingParams(top_k=-2)
    with pytest.raises(ValueError):
        SamplingParams(min_p=1.5)
