"""Continuous batching through HTTP on the shared app: concurrent questions on one session (and a
plain request) are decoded in shared steps, answer exactly what the one-request engine answers,
and show up in the replica's stats and on /metrics; a request on a deleted session fails alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, assert_openai_error, create, metric_values, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
QUESTIONS = ("What is the secret code of the vault?", "Where was Alice born?", "When is the meeting?",
             "Who discussed the budget?", "What is being built?", "Summarize the document in one sentence.")
MAX_TOKENS = 16


def ask(client, session_id: str, question: str, stream: bool) -> str:
    kwargs = dict(model=MODEL, messages=user(question), temperature=0, max_tokens=MAX_TOKENS,
                  extra_body={"session_id": session_id})
    if not stream:
        return client.chat.completions.create(**kwargs).choices[0].message.content
    parts = []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def test_concurrent_questions_share_steps_and_answer_as_alone(client, http, facts_session, reference):
    replica = facts_session["replica"]
    before = http.get("/admin/stats").json()["replicas"][replica]["batch"]
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        answers = list(pool.map(lambda iq: ask(client, facts_session["id"], iq[1], stream=iq[0] % 2 == 0),
                                enumerate(QUESTIONS)))
    for question, answer in zip(QUESTIONS, answers):
        assert answer == reference.answer(document(), user(question), MAX_TOKENS, DEFAULT_PRESS)[0], question
    after = http.get("/admin/stats").json()["replicas"][replica]["batch"]
    steps = after["steps"] - before["steps"]
    rows = after["batch_size_sum"] - before["batch_size_sum"]
    assert after["enabled"] and steps > 0
    assert rows > steps  # on average more than one row per step: the questions were batched
    assert after["running"] == 0 and after["waiting"] == 0
    counts = metric_values(str(http.base_url).rstrip("/"), "kvfleet_decode_batch_size_count")
    assert any(replica in key and value >= after["steps"] for key, value in counts.items()), counts


def test_a_request_on_a_deleted_session_fails_alone(app_url, client, http, facts_session, reference):
    doomed = create(app_url, {"context": document(4)})
    assert http.delete(f"/v1/sessions/{doomed['id']}").status_code == 200
    body = {"model": MODEL, "messages": user("What is the code?"), "max_tokens": 4, "session_id": doomed["id"]}
    with ThreadPoolExecutor(3) as pool:
        good = [pool.submit(ask, client, facts_session["id"], q, True) for q in QUESTIONS[:2]]
        failed = pool.submit(httpx.post, f"{app_url}/v1/chat/completions", json=body, timeout=120)
        assert_openai_error(failed.result(), 404)
        for question, future in zip(QUESTIONS[:2], good):
            assert future.result() == reference.answer(document(), user(question), MAX_TOKENS, DEFAULT_PRESS)[0]
