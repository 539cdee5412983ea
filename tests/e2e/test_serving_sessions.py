"""The sessions API on the shared app: what a create reports (and that it is exact), GET / list /
DELETE, idle TTL expiry, ``wait: false`` + polling, and ``stream: true`` progress events.
(Ownership with API keys: test_serving_secured.py; text / documents / messages contexts answering
like the engine: test_serving_answers.py.)"""

from __future__ import annotations

import json

import pytest

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, assert_openai_error, create, user, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e


def kv_bytes_per_token(engine) -> int:
    """Bytes one kept token occupies in an uncompressed (codec none) float32 cache."""
    config = engine.model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_hidden_layers * config.num_key_value_heads * head_dim * 2 * 4


def test_create_reports_what_was_stored(facts_session, reference, engine):
    ckv = reference.cache(document(), DEFAULT_PRESS)
    s = facts_session
    assert s["id"].startswith("sess_") and s["object"] == "session" and s["model"] == MODEL
    assert s["state"] == "ready" and s["replica"] in ("replica-0", "replica-1")
    assert s["press"]["name"] == "knorm" and s["press"]["compression_ratio"] == 0.5  # the configured default
    assert s["tokens_read"] == ckv.meta.original_tokens
    assert s["tokens_kept"] == round(ckv.meta.kept_tokens) == s["tokens_read"] // 2
    assert s["bytes_stored"] == ckv.nbytes == s["tokens_kept"] * kv_bytes_per_token(engine)
    assert s["codec"] == "none" and s["pinned"] is False and s["ttl_s"] > 0
    assert s["timings"]["load_s"] > 0


def test_get_list_delete(app_url, http):
    session = create(app_url, {"context": "The secret code of the vault is 7341.", "pinned": True, "ttl_s": 600})
    got = http.get(f"/v1/sessions/{session['id']}").json()
    assert {k: got[k] for k in ("id", "state", "tokens_read", "bytes_stored", "replica")} == \
        {k: session[k] for k in ("id", "state", "tokens_read", "bytes_stored", "replica")}
    assert got["pinned"] is True and got["ttl_s"] == 600
    listed = http.get("/v1/sessions").json()
    assert listed["object"] == "list" and session["id"] in [s["id"] for s in listed["data"]]
    deleted = http.delete(f"/v1/sessions/{session['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": session["id"], "object": "session", "deleted": True}
    assert_openai_error(http.get(f"/v1/sessions/{session['id']}"), 404, "session_not_found")
    assert session["id"] not in [s["id"] for s in http.get("/v1/sessions").json()["data"]]
    assert_openai_error(http.delete(f"/v1/sessions/{session['id']}"), 404, "session_not_found")


def test_idle_session_expires_after_its_ttl(app_url, http):
    session = create(app_url, {"context": "Alice was born in Lisbon.", "ttl_s": 2})
    assert session["ttl_s"] == 2
    wait_for(lambda: http.get(f"/v1/sessions/{session['id']}").status_code == 404, 120, "the session to expire")
    assert_openai_error(http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("Where?"),
                                                                "session_id": session["id"]}), 404)


def test_wait_false_then_poll(app_url, http, client):
    accepted = create(app_url, {"context": document(60), "wait": False}, expect=202)
    assert accepted["state"] == "loading" and accepted["tokens_read"] == 0
    ready = wait_for(lambda: (r := http.get(f"/v1/sessions/{accepted['id']}").json())["state"] == "ready" and r,
                     300, "the session to load")
    assert ready["tokens_read"] > 0 and ready["bytes_stored"] > 0 and ready["replica"] == accepted["replica"]
    reply = client.chat.completions.create(model=MODEL, messages=user("What is the secret code of the vault?"),
                                           temperature=0, max_tokens=16, extra_body={"session_id": accepted["id"]})
    assert "7341" in reply.choices[0].message.content


def test_stream_true_reports_progress(app_url, http):
    with http.stream("POST", "/v1/sessions", json={"model": MODEL, "context": document(30), "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert [e["event"] for e in events] == ["placed", "prefill_started", "ready"]
    session_id = events[0]["session_id"]
    assert all(e.get("session_id", e.get("id")) == session_id for e in events)
    ready = events[-1]
    assert ready["state"] == "ready" and ready["tokens_read"] > ready["tokens_kept"] > 0
    assert http.get(f"/v1/sessions/{session_id}").json()["state"] == "ready"
