"""OpenAI request fields through the official client on a session: n, logprobs / top_logprobs,
stop, seed, max_tokens / max_completion_tokens, finish_reason, stream_options.include_usage and
the usage numbers (checked against the in-process engine's token counts)."""

from __future__ import annotations

import pytest

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, QUESTIONS, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
QUESTION = QUESTIONS[0]


def ask(client, session: dict, question: str = QUESTION, **kwargs):
    kwargs.setdefault("max_tokens", 24)
    return client.chat.completions.create(model=MODEL, messages=user(question),
                                          extra_body={"session_id": session["id"]}, **kwargs)


def streamed(client, session: dict, **kwargs) -> list:
    return list(ask(client, session, stream=True, **kwargs))


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_usage_counts_context_question_and_answer(client, facts_session, reference, engine):
    ckv = reference.cache(document(), DEFAULT_PRESS)
    question_tokens = len(engine.question_ids(ckv, user(QUESTION)))
    _, answer_tokens, _ = reference.answer(document(), user(QUESTION), 24)
    usage = ask(client, facts_session, temperature=0).usage
    assert usage.prompt_tokens == facts_session["tokens_read"] + question_tokens
    assert usage.prompt_tokens_details.cached_tokens == facts_session["tokens_read"]
    assert usage.completion_tokens == answer_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_and_max_completion_tokens(client, facts_session, reference):
    expected, _, _ = reference.answer(document(), user(QUESTION), 3)
    short = ask(client, facts_session, temperature=0, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert short.choices[0].message.content == expected
    newer = client.chat.completions.create(model=MODEL, messages=user(QUESTION), temperature=0,
                                           max_completion_tokens=4, extra_body={"session_id": facts_session["id"]})
    assert newer.choices[0].finish_reason == "length" and newer.usage.completion_tokens == 4
    both = ask(client, facts_session, temperature=0, max_tokens=50, max_completion_tokens=2)
    assert both.usage.completion_tokens == 2  # max_completion_tokens wins, as in OpenAI's API
    done = ask(client, facts_session, temperature=0, max_tokens=64)
    assert done.choices[0].finish_reason == "stop" and done.usage.completion_tokens < 64


def test_stop_sequences(client, facts_session, reference):
    expected, _, finish = reference.answer(document(), user(QUESTION), 24, stop=("vault",))
    reply = ask(client, facts_session, temperature=0, stop=["vault"])
    assert reply.choices[0].message.content == expected
    assert "vault" not in expected and expected and reply.choices[0].finish_reason == finish == "stop"
    chunks = streamed(client, facts_session, temperature=0, stop="vault")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected


def test_n_choices_greedy_and_streamed(client, facts_session, reference):
    expected, _, _ = reference.answer(document(), user(QUESTION), 24)
    reply = ask(client, facts_session, temperature=0, n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.message.content for c in reply.choices] == [expected, expected]
    assert reply.usage.completion_tokens == 2 * reference.answer(document(), user(QUESTION), 24)[1]
    chunks = streamed(client, facts_session, temperature=0, n=2)
    texts = {0: "", 1: ""}
    finishes = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: expected, 1: expected} and set(finishes) == {0, 1}


def test_seed_makes_sampling_reproducible(client, facts_session):
    def sample(seed: int) -> list[str]:  # an open question at temperature 1: seeds really matter
        reply = ask(client, facts_session, "Write a short poem about the committee.", temperature=1.0, seed=seed,
                    n=2, max_tokens=16)
        return [c.message.content for c in reply.choices]

    first = sample(1234)
    assert sample(1234) == first  # same seed, same choices
    assert first[0] != first[1] or sample(99) != first  # the choices really are sampled
    assert len({tuple(sample(s)) for s in (1, 2, 3)}) > 1


def test_logprobs_and_top_logprobs(client, facts_session):
    reply = ask(client, facts_session, temperature=0, logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    content = choice.logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob >= entry.top_logprobs[2].logprob
        assert entry.token == entry.top_logprobs[0].token  # greedy picks the most likely token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert entry.bytes is None or bytes(entry.bytes).decode("utf-8", "replace") == entry.token  # None: special
    assert "".join(e.token for e in content).startswith(choice.message.content)  # (+ the end-of-turn token)
    assert ask(client, facts_session, temperature=0).choices[0].logprobs is None
    chunks = streamed(client, facts_session, temperature=0, logprobs=True, top_logprobs=2)
    streamed_entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed_entries] == [e.token for e in content]
    assert all(len(e.top_logprobs) == 2 for e in streamed_entries)


def test_include_usage_only_when_asked(client, facts_session):
    without = streamed(client, facts_session, temperature=0)
    assert all(c.usage is None for c in without) and without[-1].choices
    with_usage = streamed(client, facts_session, temperature=0, stream_options={"include_usage": True})
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in with_usage[:-1])


def test_user_field_is_accepted(client, facts_session):
    assert ask(client, facts_session, temperature=0, user="e2e-test", max_tokens=4).usage.completion_tokens == 4
