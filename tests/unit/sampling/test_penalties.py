"""Each logits processor changes a row of logits exactly as its source defines (no model)."""

import math

import pytest
import torch

from deployments.engine.sampling import SamplingError, SamplingParams, TokenSampler
from deployments.engine.sampling.bias import LogitBias, MinTokens
from deployments.engine.sampling.factory import build_sampler
from deployments.engine.sampling.penalties import FrequencyPresencePenalty, RepetitionPenalty

CPU = torch.device("cpu")


def row(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    p = RepetitionPenalty(2.0, prompt_ids=[0, 1], vocab_size=4, device=CPU)
    logits = row(2.0, -2.0, 1.0, 0.5)
    p.apply(logits)
    assert logits.tolist() == [1.0, -4.0, 1.0, 0.5]  # HF/vLLM: only prompt tokens so far
    p.record(3)  # a generated token counts too
    logits = row(2.0, -2.0, 1.0, 0.5)
    p.apply(logits)
    assert logits.tolist() == [1.0, -4.0, 1.0, 0.25]


def test_repetition_penalty_below_one_encourages_repeats():
    p = RepetitionPenalty(0.5, prompt_ids=[1], vocab_size=3, device=CPU)
    logits = row(1.0, 1.0, -1.0)
    p.apply(logits)
    assert logits.tolist() == [1.0, 2.0, -1.0]


def test_frequency_and_presence_penalties_count_generated_tokens_only():
    p = FrequencyPresencePenalty(frequency=0.5, presence=1.0, vocab_size=4, device=CPU)
    logits = row(1.0, 1.0, 1.0, 1.0)
    p.apply(logits)
    assert logits.tolist() == [1.0, 1.0, 1.0, 1.0]  # nothing generated yet (prompt does not count)
    for token in (3, 3, 1):
        p.record(token)
    logits = row(1.0, 1.0, 1.0, 1.0)
    p.apply(logits)
    # OpenAI: logit -= count * frequency + (count > 0) * presence
    assert logits.tolist() == [1.0, 1.0 - 0.5 - 1.0, 1.0, 1.0 - 2 * 0.5 - 1.0]


def test_negative_presence_penalty_raises_seen_tokens():
    p = FrequencyPresencePenalty(frequency=0.0, presence=-2.0, vocab_size=2, device=CPU)
    p.record(0)
    logits = row(0.0, 0.0)
    p.apply(logits)
    assert logits.tolist() == [2.0, 0.0]


def test_logit_bias_adds_to_listed_tokens():
    p = LogitBias({1: 100.0, 2: -100.0}, CPU)
    logits = row(0.5, 0.5, 0.5)
    p.apply(logits)
    assert logits.tolist() == [0.5, 100.5, -99.5]


def test_min_tokens_bans_eos_until_enough_tokens_were_generated():
    p = MinTokens(2, eos_ids={2}, device=CPU)
    for _ in range(2):
        logits = row(0.0, 0.0, 5.0)
        p.apply(logits)
        assert logits[2] == -math.inf
        p.record(0)
    logits = row(0.0, 0.0, 5.0)
    p.apply(logits)
    assert logits[2] == 5.0


def test_sampler_greedy_choice_follows_the_processed_logits_but_reports_raw_logprobs():
    params = SamplingParams(logprobs=True, logit_bias={0: 5.0})
    sampler = build_sampler(params, [], CPU, vocab_size=3, eos_ids={2}, grammars=None)
    logits = row(0.0, 3.0, 1.0)
    choice = sampler(logits)
    assert choice.token_id == 0  # the bias moved the argmax
    raw = torch.log_softmax(row(0.0, 3.0, 1.0), -1)
    assert choice.logprob == pytest.approx(float(raw[0]))  # vLLM default: raw_logprobs
    assert logits.tolist() == [0.0, 3.0, 1.0]  # the caller's row is never modified


def test_frequency_penalty_breaks_a_greedy_loop():
    logits = row(2.0, 1.9, 0.0)
    plain = TokenSampler(SamplingParams(), CPU)
    assert [plain(logits).token_id for _ in range(3)] == [0, 0, 0]
    penalised = build_sampler(SamplingParams(frequency_penalty=1.0), [], CPU, 3, {2}, None)
    assert [penalised(logits).token_id for _ in range(3)] == [0, 1, 0]


def test_min_tokens_makes_the_sampler_hold_off_eos():
    sampler = build_sampler(SamplingParams(min_tokens=2), [], CPU, 3, {2}, None)
    logits = row(0.0, 1.0, 9.0)
    assert [sampler(logits).token_id for _ in range(3)] == [1, 1, 2]
    assert sampler.may_stop


def test_logit_bias_outside_the_vocabulary_is_rejected():
    with pytest.raises(SamplingError, match="outside"):
        build_sampler(SamplingParams(logit_bias={3: 1.0}), [], CPU, 3, {2}, None)


def test_every_token_banned_is_an_error_not_a_random_pick():
    sampler = build_sampler(SamplingParams(logit_bias={0: -100.0}), [], CPU, 1, set(), None)
    with pytest.raises(SamplingError, match="no token is allowed"):
        sampler(row(-math.inf))


@pytest.mark.parametrize("bad", [{"presence_penalty": 2.5}, {"frequency_penalty": -3}, {"repetition_penalty": 0},
                                 {"logit_bias": {1: 101}}, {"min_tokens": -1}])
def test_out_of_range_parameters_are_rejected(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)


def test_params_survive_the_json_round_trip_between_actors():
    params = SamplingParams(logit_bias={5: -1.5}, repetition_penalty=1.3, min_tokens=4,
                            guided={"kind": "regex", "spec": "[a-z]+"})
    assert SamplingParams.model_validate(params.model_dump(mode="json")) == params


def test_a_tiny_repetition_penalty_keeps_the_logits_finite():
    """Regression (API fuzzer): repetition_penalty 5e-324 is valid (> 0) and overflowed the division to
    inf, so sampling failed with a 500. The penalised logits stay finite and greedy still picks a token."""
    from deployments.engine.sampling.penalties import RepetitionPenalty

    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    RepetitionPenalty(5e-324, [0, 1], 4, torch.device("cpu")).apply(logits)
    assert torch.isfinite(logits).all()
    assert int(torch.softmax(logits, -1).argmax()) == 0  # the seen positive logit is pushed to the top, finitely
    assert not torch.isnan(torch.softmax(logits, -1)).any()


def test_a_tiny_temperature_is_greedy_not_an_overflow():
    """Regression (same kind as above): temperature 1e-300 is valid (> 0); dividing the logits by it
    overflowed to inf. Below vLLM's epsilon (1e-5) sampling is greedy."""
    sampler = build_sampler(SamplingParams(max_tokens=1, temperature=1e-300, seed=1), [], torch.device("cpu"), 4,
                            set(), None)
    logits = torch.tensor([0.1, 2.0, -1.0, 0.5])
    assert sampler._pick(logits) == 1
