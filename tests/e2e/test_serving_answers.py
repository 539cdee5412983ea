"""Answers through the real stack equal the in-process engine's answers (greedy, same context and
press): non-streaming and streaming, session id via ``extra_body`` and via the ``X-Session-Id``
header, sessions from text, documents and messages, a plain request without a session, and 16
concurrent questions over 4 sessions on 2 replicas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, QUESTIONS, create, user, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
MAX_TOKENS = 24


def ask(client, session_id: str, question: str, max_tokens: int = MAX_TOKENS, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=user(question), temperature=0, max_tokens=max_tokens,
                                          extra_body={"session_id": session_id}, **kwargs)


def stream_text(client, session_id: str | None, messages: list[dict], max_tokens: int = MAX_TOKENS,
                **kwargs) -> tuple[str, list]:
    extra = {"extra_body": {"session_id": session_id}} if session_id else {}
    stream = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens,
                                            stream=True, **extra, **kwargs)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_session_answers_equal_the_engine(client, facts_session, reference):
    assert facts_session["state"] == "ready"
    assert facts_session["tokens_kept"] < facts_session["tokens_read"]  # the default press really pruned
    for question in QUESTIONS:
        expected, n_tokens, finish = reference.answer(document(), user(question), MAX_TOKENS)
        reply = ask(client, facts_session["id"], question)
        assert reply.choices[0].message.content == expected, question
        assert reply.choices[0].finish_reason == finish
        assert reply.usage.completion_tokens == n_tokens
        assert reply.usage.prompt_tokens_details.cached_tokens == facts_session["tokens_read"]
        assert reply.usage.prompt_tokens > facts_session["tokens_read"]
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert "7341" in ask(client, facts_session["id"], QUESTIONS[0]).choices[0].message.content


def test_streamed_answer_equals_the_engine(client, facts_session, reference):
    expected, n_tokens, finish = reference.answer(document(), user(QUESTIONS[1]), MAX_TOKENS)
    text, chunks = stream_text(client, facts_session["id"], user(QUESTIONS[1]),
                               stream_options={"include_usage": True})
    assert text == expected
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [finish]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == n_tokens
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == facts_session["tokens_read"]


def test_session_id_in_the_header(client, facts_session, reference):
    expected, _, _ = reference.answer(document(), user(QUESTIONS[2]), MAX_TOKENS)
    reply = client.chat.completions.create(model=MODEL, messages=user(QUESTIONS[2]), temperature=0,
                                           max_tokens=MAX_TOKENS, extra_headers={"X-Session-Id": facts_session["id"]})
    assert reply.choices[0].message.content == expected
    text, _ = stream_text(client, None, user(QUESTIONS[2]), extra_headers={"X-Session-Id": facts_session["id"]})
    assert text == expected


def test_session_from_documents(app_url, client, reference):
    documents = ["The secret code of the vault is 7341.", "Alice was born in Lisbon.",
                 "The meeting is on Thursday at noon."]
    session = create(app_url, {"documents": documents, "press": {"name": "none"}})
    assert session["tokens_kept"] == session["tokens_read"]
    expected, _, _ = reference.answer("\n\n".join(documents), user(QUESTIONS[1]), MAX_TOKENS, press={"name": "none"})
    assert ask(client, session["id"], QUESTIONS[1]).choices[0].message.content == expected
    assert "Lisbon" in expected


def test_session_from_messages(app_url, client, reference):
    history = [{"role": "system", "content": "You answer in one short sentence."},
               {"role": "user", "content": "Remember this: " + document(20)},
               {"role": "assistant", "content": "I will remember it."}]
    press = {"name": "snapkv", "compression_ratio": 0.3}
    session = create(app_url, {"messages": history, "press": press})
    expected, n_tokens, _ = reference.answer(history, user(QUESTIONS[0]), MAX_TOKENS, press=press)
    reply = ask(client, session["id"], QUESTIONS[0])
    assert reply.choices[0].message.content == expected
    assert reply.usage.completion_tokens == n_tokens


def test_plain_request_without_session(client, reference):
    messages = user("The secret code of the vault is 7341. What is the secret code of the vault?")
    expected, n_tokens, _ = reference.plain(messages, MAX_TOKENS)
    reply = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=MAX_TOKENS)
    assert reply.choices[0].message.content == expected
    assert reply.usage.completion_tokens == n_tokens
    assert reply.usage.prompt_tokens == reference.plain_prompt_tokens(messages)  # the whole prompt, not its tail
    assert getattr(reply, "session_id", None) is None
    # the same prompt again (its prefix may now come from the replica's compressed-prefix cache)
    text, chunks = stream_text(client, None, messages, stream_options={"include_usage": True})
    assert text == expected
    assert chunks[-1].usage.prompt_tokens == reply.usage.prompt_tokens


def replica_of(app_url: str, session_id: str) -> str:
    return httpx.post(f"{app_url}/admin/lookup", json={"session_id": session_id}, timeout=60).json()["replica"]


def spread_over_both_replicas(app_url: str, session_ids: list[str]) -> None:
    """Placement is by load (earlier tests leave bytes on one replica), so sessions may all land on
    one: move the last one to the other replica through /admin/move, then check both hold some."""
    replicas = [replica_of(app_url, sid) for sid in session_ids]
    if len(set(replicas)) == 1:
        target = "replica-1" if replicas[0] == "replica-0" else "replica-0"
        health = httpx.get(f"{app_url}/admin/health", timeout=60).text
        reply = httpx.post(f"{app_url}/admin/move", json={"session_id": session_ids[-1], "target_replica": target},
                           timeout=60)
        assert reply.status_code == 200, f"move to {target}: {reply.status_code} {reply.text}; health: {health}"
        event_id = reply.json()["event_id"]
        event = wait_for(lambda: (e := httpx.get(f"{app_url}/admin/events/{event_id}", timeout=60).json())["status"]
                         in ("done", "failed") and e, 300, f"move of {session_ids[-1]} to {target}")
        assert event["status"] == "done", event
        replicas = [replica_of(app_url, sid) for sid in session_ids]
    assert set(replicas) == {"replica-0", "replica-1"}, replicas


@pytest.mark.slow
def test_concurrent_questions_match_sequential_answers(app_url, client, facts_session, reference):
    """16 questions in flight over 4 sessions spread on both replicas; every answer is the
    sequential one (and the engine's), streaming or not."""
    specs = [(document(30), {"name": "snapkv", "compression_ratio": 0.5}),
             (document(25), {"name": "streaming_llm", "compression_ratio": 0.3}),
             (document(20), {"name": "none"})]
    sessions = [(facts_session, document(), DEFAULT_PRESS)]
    sessions += [(create(app_url, {"context": ctx, "press": press}), ctx, press) for ctx, press in specs]
    spread_over_both_replicas(app_url, [s["id"] for s, _, _ in sessions])
    questions = [*QUESTIONS, "Summarize the document in one sentence."]
    jobs = [(s["id"], ctx, press, q) for s, ctx, press in sessions for q in questions]
    assert len(jobs) == 16

    sequential = {(sid, q): ask(client, sid, q).choices[0].message.content for sid, _, _, q in jobs}
    for sid, ctx, press, q in jobs:
        assert sequential[(sid, q)] == reference.answer(ctx, user(q), MAX_TOKENS, press=press)[0], (press, q)

    def concurrent(i: int) -> str:
        sid, _, _, q = jobs[i]
        if i % 2:
            return stream_text(client, sid, user(q))[0]
        return ask(client, sid, q).choices[0].message.content

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(concurrent, range(len(jobs))))
    for (sid, _, press, q), answer in zip(jobs, answers):
        assert answer == sequential[(sid, q)], (press, q)
