"""Issue 14 on the real app (real model, real HTTP, the official openai client): exact reply text,
logprob bytes, no session stuck in ``loading``, ``models.retrieve``, non-JSON bodies."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.conftest import assert_openai_error, metric_values, user, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

COPY = "He said ' hello ' to me . It 's fine , is n't it ?"
REPLACEMENT_BYTES = list("\ufffd".encode("utf-8"))


def copy_request(text: str) -> list[dict]:
    return user(f"Repeat exactly, character for character: {text}")


def joined_bytes(entries) -> str:
    return b"".join(bytes(e.bytes or []) for e in entries).decode("utf-8", "replace")


def stream_reply(client, **kwargs) -> tuple[str, list]:
    text, entries = "", []
    for chunk in client.chat.completions.create(model=MODEL, stream=True, **kwargs):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                entries += chunk.choices[0].logprobs.content
    return text, entries


@pytest.mark.parametrize("text", [COPY, "你好，世界 😀🎉 café"])
def test_reply_text_is_the_exact_text_of_its_tokens(client, text):
    """Regression: the copied line came back as ``He said 'ello 'o me. It ' fine`` (clean-up of
    spaces applied to already streamed text). The joined ``bytes`` of the logprob entries are the
    generated tokens' own bytes, so content == their exact text, streamed and not, for every
    top_logprobs entry too."""
    kwargs = dict(messages=copy_request(text), temperature=0, max_tokens=40, logprobs=True, top_logprobs=3)
    reply = client.chat.completions.create(model=MODEL, **kwargs)
    content, entries = reply.choices[0].message.content, reply.choices[0].logprobs.content
    assert content and len(entries) == reply.usage.completion_tokens
    assert joined_bytes(entries) == content  # the end-of-turn token has bytes None
    for entry in [e for e in entries] + [t for e in entries for t in e.top_logprobs]:
        if entry.bytes is not None:
            assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token
            assert entry.bytes != REPLACEMENT_BYTES or entry.token == "\ufffd" and "\ufffd" in content
    streamed, streamed_entries = stream_reply(client, **kwargs)
    assert streamed == content
    assert [(e.token, e.bytes) for e in streamed_entries] == [(e.token, e.bytes) for e in entries]


def test_a_stop_string_cuts_only_what_follows_it(client):
    base = dict(messages=copy_request(COPY), temperature=0, max_tokens=40)
    full = client.chat.completions.create(model=MODEL, **base).choices[0].message.content
    cut_at = len(full) // 2
    stop = full[cut_at:cut_at + 3]
    assert stop.strip(), full
    cut = client.chat.completions.create(model=MODEL, stop=[stop], **base)
    expected = full[:full.index(stop)]
    assert cut.choices[0].message.content == expected and cut.choices[0].finish_reason == "stop"
    assert stream_reply(client, stop=[stop], **base)[0] == expected


def test_a_client_hanging_up_never_leaves_a_session_loading(app_url, http):
    """Regression: POST /v1/sessions (~1k tokens) with a client gone after 0.3 s stayed ``loading``."""
    before = {s["id"] for s in http.get("/v1/sessions").json()["data"]}
    context = "The archive holds letters, maps and ledgers from the old harbour office. " * 70
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{app_url}/v1/sessions", json={"model": MODEL, "context": context}, timeout=0.3)
    new = wait_for(lambda: [s for s in http.get("/v1/sessions").json()["data"] if s["id"] not in before],
                   120, "the hung-up session to be listed")
    assert len(new) == 1
    session_id = new[0]["id"]
    final = wait_for(lambda: (s := http.get(f"/v1/sessions/{session_id}").json())["state"] != "loading" and s,
                     600, "the load to end")
    assert final["state"] == "ready", final
    assert final["tokens_read"] > 900
    repaired = metric_values(app_url, "kvfleet_control_plane")['{counter="sessions_repaired"}']
    assert repaired == 0  # it completed by itself; the sweep (unit-tested) had nothing to repair
    http.delete(f"/v1/sessions/{session_id}")


def test_models_retrieve(client, http):
    listed = client.models.list().data[0]
    got = client.models.retrieve(MODEL)
    assert got.id == listed.id == MODEL and got.owned_by == listed.owned_by
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    error = assert_openai_error(http.get("/v1/models/no-such-model"), 404, "model_not_found")
    assert error["param"] == "model"


def test_a_body_that_is_not_declared_json_is_a_415_that_says_what_to_send(http):
    body = '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}' % MODEL
    form = http.post("/v1/chat/completions", content=body,
                     headers={"content-type": "application/x-www-form-urlencoded"})  # what `curl -d` sends
    assert "Content-Type: application/json" in assert_openai_error(form, 415, "unsupported_media_type")["message"]
    assert http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"}).status_code == 200
    assert_openai_error(http.post("/v1/chat/completions", content=body), 415, "unsupported_media_type")  # no header
