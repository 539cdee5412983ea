"""Every error the shared app can be driven to returns OpenAI error JSON with the right status, and
the server keeps answering afterwards: 400, 404, 409, 413, 422 here; 401, 429 and 503 need their
own configuration (test_serving_secured.py)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import document
from tests.e2e.conftest import MAX_CONTEXT_TOKENS, QUESTIONS, assert_openai_error, create, user, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e


def chat(http: httpx.Client, **body) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": MODEL, "messages": user(QUESTIONS[0]), **body})


@pytest.fixture(autouse=True)
def server_stays_up(http: httpx.Client, facts_session: dict):
    """After every error test, the app still answers a question on a session."""
    yield
    assert http.get("/health").status_code == 200
    reply = chat(http, session_id=facts_session["id"], temperature=0, max_tokens=12)
    assert reply.status_code == 200, reply.text
    assert "7341" in reply.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("body, code, words", [
    ({"messages": []}, "invalid_request", "messages"),
    ({"temperature": 5}, "invalid_request", "temperature"),
    ({"bogus_field": 1}, "invalid_request", "bogus_field"),
    ({"n": 5}, "n_too_large", "n=5"),
    ({"max_tokens": 100_000}, "max_tokens_too_large", "max_tokens"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"if": {}, "then": {}}}}},
     "unsupported_schema", '"if"'),
    ({"response_format": {"type": "xml"}}, "invalid_request", "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "if": {},
                                                                            "then": {}}}}]},
     "unsupported_schema", "tool 'f'"),
    ({"presence_penalty": 2.5}, "invalid_request", "presence_penalty"),
    ({"logit_bias": {"99999999": 1.0}}, "invalid_request", "logit_bias"),
    ({"stream_options": {"include_usage": True}}, "invalid_request", "stream_options"),
    ({"top_logprobs": 3}, "invalid_request", "top_logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "invalid_request", "stop"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request", "role"),
])
def test_bad_chat_request_is_400(http, body, code, words):
    error = assert_openai_error(chat(http, **body), 400, code)
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"


def test_malformed_bodies_are_400(http):
    assert_openai_error(http.post("/v1/chat/completions", content=b"{not json",
                                  headers={"content-type": "application/json"}), 400)
    assert_openai_error(http.post("/v1/chat/completions", json={"messages": user("hi")}), 400)  # no model
    assert_openai_error(http.post("/v1/sessions", json={"model": MODEL}), 400)  # no context
    assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": "a", "messages": user("b")}), 400)
    assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": "   "}), 400)


def test_press_on_a_session_question_is_400(http, facts_session):
    error = assert_openai_error(chat(http, session_id=facts_session["id"], press={"name": "knorm"}), 400)
    assert "press" in error["message"]


def test_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=user("hi"), n=99)
    assert info.value.status_code == 400 and info.value.code == "n_too_large"


def test_unknown_session_is_404(http, client):
    assert_openai_error(chat(http, session_id="sess_does_not_exist"), 404, "session_not_found")
    assert_openai_error(http.get("/v1/sessions/sess_does_not_exist"), 404, "session_not_found")
    assert_openai_error(http.delete("/v1/sessions/sess_does_not_exist"), 404, "session_not_found")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=MODEL, messages=user("hi"), extra_headers={"X-Session-Id": "sess_nope"})


def test_deleted_session_is_404(app_url, http):
    session = create(app_url, {"context": "The secret code of the vault is 7341."})
    assert http.delete(f"/v1/sessions/{session['id']}").status_code == 200
    assert_openai_error(chat(http, session_id=session["id"]), 404, "session_not_found")


def test_unknown_model_is_404(http, client):
    error = assert_openai_error(http.post("/v1/chat/completions", json={"model": "gpt-17", "messages": user("hi")}),
                                404, "model_not_found")
    assert MODEL in error["message"]
    assert_openai_error(http.post("/v1/sessions", json={"model": "gpt-17", "context": "x"}), 404, "model_not_found")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-17", messages=user("hi"), stream=True)


def test_question_before_the_session_is_ready_is_409(app_url, http):
    session = create(app_url, {"context": document(100), "wait": False}, expect=202)
    assert session["state"] == "loading"
    assert_openai_error(chat(http, session_id=session["id"]), 409, "session_not_ready")
    wait_for(lambda: http.get(f"/v1/sessions/{session['id']}").json()["state"] == "ready", 300, "the session to load")
    assert chat(http, session_id=session["id"], temperature=0, max_tokens=8).status_code == 200


def test_context_over_the_limit_is_413(http):
    """limits.max_context_tokens (lowered to MAX_CONTEXT_TOKENS in this app) is enforced on the
    tokenized context at session create, before anything is placed, and on plain prompts."""
    too_long = document(150)  # about 2600 tokens: under the model's 8192 positions, over the app's limit
    before = len(http.get("/v1/sessions").json()["data"])
    error = assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": too_long}),
                                413, "context_length_exceeded")
    assert str(MAX_CONTEXT_TOKENS) in error["message"]
    assert len(http.get("/v1/sessions").json()["data"]) == before  # nothing was placed or left behind
    assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "documents": [too_long]}),
                        413, "context_length_exceeded")
    assert_openai_error(chat(http, messages=user(too_long), max_tokens=4), 413, "context_length_exceeded")


def test_context_over_the_model_positions_is_413(http):
    assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": "x " * 9000}),
                        413, "context_length_exceeded")


@pytest.mark.parametrize("press, words", [
    ({"name": "no_such_press"}, "knorm"),  # the message lists the valid names
    ({"name": "knorm", "compression_ratio": 1.5}, "compression_ratio"),
    ({"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "no_such_inner"}]}, "no_such_inner"),
])
def test_bad_press_is_422(http, press, words):
    error = assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": "abc", "press": press}),
                                422, "invalid_press")
    assert words in error["message"]
    assert_openai_error(chat(http, press=press, max_tokens=4), 422, "invalid_press")


def test_text_spelling_a_token_the_model_cannot_read_is_a_400(http, client):
    """Text holding ``<FILL_ME>`` (a tokenizer-only token above the model's embedding rows) in a chat
    message, a text prompt or a session context: 400 naming the token, and the app still answers."""
    from tests.serving import MODEL

    message = [{"role": "user", "content": "Complete: <FILL_ME>"}]
    for path, body in (("/v1/chat/completions", {"model": MODEL, "messages": message, "max_tokens": 2}),
                       ("/v1/completions", {"model": MODEL, "prompt": "Complete: <FILL_ME>", "max_tokens": 2}),
                       ("/v1/completions", {"model": MODEL, "prompt": [1, 49153], "max_tokens": 2}),
                       ("/v1/sessions", {"model": MODEL, "context": "A note. <FILL_ME> The end."})):
        error = assert_openai_error(http.post(path, json=body), 400)
        assert "FILL_ME" in error["message"] or "49153" in error["message"], error
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert reply.choices[0].message.content
