"""Penalties, logit_bias and min_tokens through the official openai client against the live app.

The example: asked to list what the committee discussed, the embedded model (greedy, on the
knorm-compressed facts session) loops on one sentence of the document until max_tokens.
``repetition_penalty`` (vLLM/HF) ends the loop; ``frequency_penalty`` (OpenAI) reduces it.
"""

from __future__ import annotations

import pytest

from tests.conftest import document
from tests.e2e.conftest import user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

LOOPING = "List everything the committee discussed."
LONG = 120


def repeated_fraction(text: str, n: int = 4) -> float:
    """Share of word n-grams that already occurred earlier in the text (0: no repeats)."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / max(1, len(grams))


def answer(client, session_id: str | None, question: str, stream: bool = False, **fields) -> list:
    messages = user(question) if session_id else user(document(4) + "\n\n" + question)
    extra = {k: fields.pop(k) for k in list(fields) if k in ("repetition_penalty", "min_tokens")}
    if session_id:
        extra["session_id"] = session_id
    kwargs = dict(model=MODEL, messages=messages, temperature=0, extra_body=extra, **fields)
    if not stream:
        return client.chat.completions.create(**kwargs).choices
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                   if c.choices)
    return [text]


@pytest.fixture(scope="module")
def looping_baseline(client, facts_session) -> str:
    text = answer(client, facts_session["id"], LOOPING, max_tokens=LONG)[0].message.content
    assert repeated_fraction(text) > 0.5, text  # the degenerate repetition this module is about
    return text


def test_repetition_penalty_ends_the_loop(client, facts_session, looping_baseline):
    text = answer(client, facts_session["id"], LOOPING, max_tokens=LONG, repetition_penalty=1.3)[0].message.content
    assert repeated_fraction(text) < 0.2, text
    streamed = answer(client, facts_session["id"], LOOPING, stream=True, max_tokens=LONG, repetition_penalty=1.3)[0]
    assert streamed == text  # the same per-request sampler state when streaming


def test_frequency_penalty_reduces_the_loop(client, facts_session, looping_baseline):
    text = answer(client, facts_session["id"], LOOPING, max_tokens=LONG, frequency_penalty=1.0)[0].message.content
    assert repeated_fraction(text) < repeated_fraction(looping_baseline) - 0.1, text


def test_penalties_apply_to_every_choice_of_a_plain_request(client):
    plain = answer(client, None, LOOPING, max_tokens=LONG, n=2)
    penalised = answer(client, None, LOOPING, max_tokens=LONG, n=2, repetition_penalty=1.3)
    assert penalised[0].message.content == penalised[1].message.content  # greedy: both choices alike
    assert repeated_fraction(penalised[0].message.content) < repeated_fraction(plain[0].message.content)


def test_logit_bias_bans_and_forces_tokens(client, facts_session, reference):
    encode = reference.engine.tokenizer.encode
    first = answer(client, facts_session["id"], LOOPING, max_tokens=4)[0].message.content
    first_id = encode(first, add_special_tokens=False)[0]
    banned = answer(client, facts_session["id"], LOOPING, max_tokens=4, logit_bias={str(first_id): -100})
    assert encode(banned[0].message.content, add_special_tokens=False)[0] != first_id
    (forced_id,) = encode(" banana", add_special_tokens=False)
    forced = answer(client, facts_session["id"], LOOPING, max_tokens=3, logit_bias={str(forced_id): 100})
    assert forced[0].message.content.split() == ["banana"] * 3


def test_min_tokens_holds_off_the_stop_string(client, facts_session, looping_baseline):
    stop = " " + looping_baseline.split()[1]  # a word of the looping sentence: it recurs in the loop
    short = answer(client, facts_session["id"], LOOPING, max_tokens=LONG, stop=[stop])[0]
    held = answer(client, facts_session["id"], LOOPING, max_tokens=LONG, stop=[stop], min_tokens=30)[0]
    assert short.finish_reason == "stop" and held.finish_reason == "stop"
    assert len(held.message.content) > len(short.message.content)
