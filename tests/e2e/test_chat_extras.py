"""vLLM's chat extras on /v1/chat/completions through the official client (``extra_body``):
top_k, min_p, add_generation_prompt, continue_final_message, chat_template_kwargs, echo -
honoured (checked against the in-process engine) or a clear 400."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import _torch_threads, assert_openai_error, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
QUESTION = user("Name a colour of the sky.")
PARTIAL = [*QUESTION, {"role": "assistant", "content": "The sky is often"}]


def raw_reference(engine, text: str, max_tokens: int) -> str:
    """Greedy continuation of a rendered prompt (prefill all but its last token, as served)."""
    from deployments.engine.sampling import SamplingParams
    from kvpool.press_spec import PressSpec

    ids = list(engine.tokenizer.encode(text, add_special_tokens=False))
    with _torch_threads(1):
        ckv = engine.prefill(ids[:-1], PressSpec())
        return "".join(s.text for s in engine.generate_ids(ckv, ids[-1:], SamplingParams(max_tokens=max_tokens)))


def chat(client, messages, **extra):
    return client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                          extra_body=extra)


def test_top_k_and_min_p(client):
    greedy = chat(client, QUESTION).choices[0].message.content
    for extra in ({"top_k": 1}, {"min_p": 1.0}):
        hot = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=10, temperature=1.8, seed=5,
                                             extra_body=extra)
        assert hot.choices[0].message.content == greedy, extra


def test_continue_final_message_with_echo(client, engine):
    text = engine.tokenizer.apply_chat_template(PARTIAL, tokenize=False, continue_final_message=True)
    expected = raw_reference(engine, text, 10)
    reply = chat(client, PARTIAL, add_generation_prompt=False, continue_final_message=True)
    assert reply.choices[0].message.content == expected
    echoed = chat(client, PARTIAL, add_generation_prompt=False, continue_final_message=True, echo=True)
    assert echoed.choices[0].message.content == "The sky is often" + expected
    streamed = client.chat.completions.create(model=MODEL, messages=PARTIAL, max_tokens=10, temperature=0, stream=True,
                                              extra_body={"add_generation_prompt": False,
                                                          "continue_final_message": True, "echo": True})
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == echoed.choices[0].message.content


def test_add_generation_prompt_false_and_template_kwargs(client, engine):
    text = engine.tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=False)
    assert chat(client, QUESTION, add_generation_prompt=False).choices[0].message.content == raw_reference(engine, text, 10)
    # kwargs the template does not use change nothing: the default rendering, served as token ids
    default = engine.tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert chat(client, QUESTION, chat_template_kwargs={"enable_thinking": False}).choices[0].message.content == \
        raw_reference(engine, default, 10)


def test_echo_without_a_final_assistant_message_adds_nothing(client):
    assert chat(client, QUESTION, echo=True).choices[0].message.content == chat(client, QUESTION).choices[0].message.content


@pytest.mark.parametrize("extra, param", [
    ({"continue_final_message": True}, "continue_final_message"),  # add_generation_prompt is true by default
    ({"continue_final_message": True, "add_generation_prompt": False}, "continue_final_message"),  # last is user
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs.messages"),
    ({"top_k": -3}, "top_k"),
    ({"min_p": -0.1}, "min_p"),
    ({"echo": "yes"}, "echo"),
])
def test_bad_extras_are_400s(http, extra, param):
    error = assert_openai_error(http.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION, **extra}), 400)
    assert error["param"] == param, error


def test_template_options_on_a_session_are_a_400(http, facts_session):
    body = {"model": MODEL, "messages": QUESTION, "session_id": facts_session["id"], "add_generation_prompt": False}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, "unsupported_parameter")


def test_stop_token_ids_end_the_answer_in_chat_and_text_completions(client, engine):
    """vLLM's ``stop_token_ids``: the ids of a greedy answer's own text stop the same request early
    (finish_reason "stop"), streamed and not, on both generation routes; an id outside the
    vocabulary is a 400 naming it."""
    free = chat(client, QUESTION, ignore_eos=True)
    assert free.choices[0].finish_reason == "length" and free.usage.completion_tokens == 10
    ids = sorted(set(engine.tokenizer.encode(free.choices[0].message.content, add_special_tokens=False)))
    stopped = chat(client, QUESTION, ignore_eos=True, stop_token_ids=ids)
    assert stopped.choices[0].finish_reason == "stop" and stopped.usage.completion_tokens < 10
    assert free.choices[0].message.content.startswith(stopped.choices[0].message.content)
    pieces = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=10, temperature=0, stream=True,
                                            extra_body={"ignore_eos": True, "stop_token_ids": ids})
    chunks = [c.choices[0] for c in pieces if c.choices]
    assert "".join(c.delta.content or "" for c in chunks) == stopped.choices[0].message.content
    assert chunks[-1].finish_reason == "stop"
    text = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=8, temperature=0,
                                     extra_body={"ignore_eos": True})
    ids = sorted(set(engine.tokenizer.encode(text.choices[0].text, add_special_tokens=False)))
    early = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=8, temperature=0,
                                      extra_body={"ignore_eos": True, "stop_token_ids": ids})
    assert early.choices[0].finish_reason == "stop" and early.usage.completion_tokens < 8
    with pytest.raises(Exception) as caught:
        chat(client, QUESTION, stop_token_ids=[engine.vocab_size])
    assert getattr(caught.value, "status_code", None) == 400 and "stop_token_ids[0]" in str(caught.value)
