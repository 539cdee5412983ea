"""vLLM's ``stop_token_ids`` on the real model: sampling one of them ends the answer with
``finish_reason`` "stop" (the token and its text kept), in the one-request loop and in the batched
decode loop alike; ``min_tokens`` holds them off as it holds off EOS; ``ignore_eos`` does not
disable them; ids outside the vocabulary are a SamplingError."""

from __future__ import annotations

import threading

import pytest

from deployments.engine.decode import BatchConfig, DecodeLoop
from deployments.engine.sampling import SamplingError, SamplingParams
from kvpool.press_spec import NO_PRESS

QUESTION = "List three fruits."


@pytest.fixture(scope="module")
def cache(engine):
    return engine.prefill("Apples are red. Bananas are yellow. Grapes are purple.", NO_PRESS)


def answer(engine, ckv, params: SamplingParams) -> tuple[list[int], str, str]:
    tokens, text, finish = [], [], None
    for step in engine.generate(ckv, QUESTION, params):
        if step.token is not None:
            tokens.append(step.token.token_id)
        text.append(step.text)
        finish = step.finish_reason or finish
    return tokens, "".join(text), finish


def batched(engine, ckv, params: SamplingParams) -> tuple[list[int], str]:
    steps, done = [], threading.Event()

    def deliver(item):
        steps.append(item)
        if isinstance(item, BaseException) or item.finish_reason is not None:
            done.set()

    loop = DecodeLoop(engine, BatchConfig(max_batch_size=4))
    try:
        loop.submit(ckv, engine.question_ids(ckv, QUESTION), params, deliver)
        assert done.wait(300)
    finally:
        loop.close()
    assert not isinstance(steps[-1], BaseException), steps[-1]
    return [s.token.token_id for s in steps if s.token is not None], steps[-1].finish_reason


def test_a_stop_token_ends_the_answer_where_it_is_sampled(engine, cache):
    free, _, _ = answer(engine, cache, SamplingParams(max_tokens=12, ignore_eos=True))
    stop = free[4]
    first = free.index(stop)  # the first time greedy decoding samples it
    tokens, text, finish = answer(engine, cache, SamplingParams(max_tokens=12, ignore_eos=True,
                                                                stop_token_ids=(stop,)))
    assert tokens == free[:first + 1] and finish == "stop"
    assert text == engine.tokenizer.decode(free[:first + 1])  # the stop token's text is kept
    assert batched(engine, cache, SamplingParams(max_tokens=12, ignore_eos=True,
                                                 stop_token_ids=(stop,))) == (free[:first + 1], "stop")


def test_min_tokens_holds_stop_tokens_off(engine, cache):
    free, _, _ = answer(engine, cache, SamplingParams(max_tokens=12, ignore_eos=True))
    stop = free[0]
    held, _, _ = answer(engine, cache, SamplingParams(max_tokens=12, ignore_eos=True, min_tokens=3,
                                                      stop_token_ids=(stop,)))
    assert held[0] != stop and stop not in held[:3]


def test_ids_outside_the_vocabulary_are_refused(engine, cache):
    with pytest.raises(SamplingError, match="stop_token_ids"):
        answer(engine, cache, SamplingParams(max_tokens=3, stop_token_ids=(engine.vocab_size,)))
    with pytest.raises(ValueError, match="negative"):
        SamplingParams(stop_token_ids=(-1,))
