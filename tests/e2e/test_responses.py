"""The Responses API on the shared app, with the official ``openai`` client: replies and their
usage, streaming (raw events and the ``responses.stream`` helper) equal to the non-streamed reply,
chains of turns on ``previous_response_id`` that prefill only their new tokens and answer as the
in-process engine does on the whole conversation, ``text.format`` json_schema, retrieval /
deletion / input items, 404s, ``store: false``, chains started on a session, compression of a long
chain, and a chain whose cache is lost and rebuilt (same answers at temperature 0).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import ray

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, assert_openai_error, create, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

QUESTIONS = ["Name a primary color.", "Name another one.", "And a third?", "Which of them is the warmest?",
             "Say the first one again."]


def turns(client, questions: list[str], **first: object) -> list:
    """A chain: each question continues the previous response (greedy, short answers)."""
    out, previous = [], None
    for i, question in enumerate(questions):
        extra = first if i == 0 else {}
        out.append(client.responses.create(model=MODEL, input=question, previous_response_id=previous,
                                           temperature=0, max_output_tokens=24, **extra))
        previous = out[-1].id
    return out


@pytest.fixture(scope="module")
def conversations(engine):
    from deployments.ingress.responses.conversation import ConversationRenderer

    return ConversationRenderer(engine.renderer)


def engine_chain(engine, conversations, questions: list[str], instructions: str | None = None) -> list[tuple[str, int]]:
    """The in-process engine answering the same chain, each turn on the WHOLE conversation so far
    prefilled uncompressed (a plain re-read): (answer, tokens of its prompt, finish reason) per turn."""
    from deployments.engine.sampling import SamplingParams
    from tests.e2e.conftest import _torch_threads

    conversation: list[dict] = [{"role": "system", "content": instructions}] if instructions else []
    out = []
    for question in questions:
        conversation.append({"role": "user", "content": question})
        ids = conversations.first_turn(conversation).input_ids
        with _torch_threads(1):
            ckv = engine.prefill(ids[:-1])
            text, _, finish = engine.answer(ckv, ids[-1:], SamplingParams(max_tokens=24, temperature=0.0))
        conversation.append({"role": "assistant", "content": text})
        out.append((text, len(ids), finish))
    return out


def test_create_answers_like_the_engine(client, engine, conversations):
    reply = client.responses.create(model=MODEL, input=QUESTIONS[0], instructions="Answer briefly.",
                                    temperature=0, max_output_tokens=24)
    (text, prompt_tokens, finish), = engine_chain(engine, conversations, QUESTIONS[:1], "Answer briefly.")
    assert reply.id.startswith("resp_") and reply.object == "response"
    assert reply.status == {"stop": "completed", "length": "incomplete"}[finish]
    if finish == "length":
        assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output_text == text and text
    assert reply.output[0].type == "message" and reply.output[0].role == "assistant"
    assert reply.instructions == "Answer briefly." and reply.store is True and reply.error is None
    assert reply.usage.input_tokens == prompt_tokens
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


def test_chain_of_five_prefills_only_new_tokens_and_answers_like_a_full_reread(client, engine, conversations):
    chain = turns(client, QUESTIONS)
    expected = engine_chain(engine, conversations, QUESTIONS)
    assert [r.output_text for r in chain] == [text for text, _, _ in expected]
    for before, after, (_, prompt_tokens, _) in zip(chain, chain[1:], expected[1:]):
        cached = after.usage.input_tokens_details.cached_tokens
        # the previous cache holds the previous prompt + answer + the template's end of turn (2 tokens)
        assert cached == before.usage.input_tokens + before.usage.output_tokens - 1 + 2 or \
            cached == before.usage.input_tokens + before.usage.output_tokens + 2
        assert after.usage.input_tokens == prompt_tokens  # the whole conversation, as a re-read counts it
        assert after.usage.input_tokens - cached < 30  # only the new turn was prefilled
        assert after.previous_response_id == before.id


def test_stream_events_equal_the_non_streamed_reply(client):
    plain = client.responses.create(model=MODEL, input=QUESTIONS[0], temperature=0, max_output_tokens=16,
                                    store=False)
    events = list(client.responses.create(model=MODEL, input=QUESTIONS[0], temperature=0, max_output_tokens=16,
                                          store=False, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          f"response.{plain.status}"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == plain.output_text
    assert final.usage == plain.usage and final.status == plain.status
    with client.responses.stream(model=MODEL, input=QUESTIONS[0], temperature=0, max_output_tokens=16,
                                 store=False) as stream:
        if plain.status == "completed":
            assert stream.get_final_response().output_text == plain.output_text
        else:  # the SDK helper wants response.completed; a cut answer ends with response.incomplete
            with pytest.raises(RuntimeError, match="response.completed"):
                stream.get_final_response()


def test_raw_stream_framing(app_url):
    body = {"model": MODEL, "input": "Hi", "max_output_tokens": 4, "stream": True, "store": False}
    with httpx.stream("POST", f"{app_url}/v1/responses", json=body, timeout=120) as response:
        text = "".join(response.iter_text())
    blocks = [b for b in text.split("\n\n") if b]
    for block in blocks:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert json.loads(data_line[6:])["type"] == event_line[7:]
    assert "[DONE]" not in text


def test_json_schema_format(client):
    schema = {"type": "object", "properties": {"color": {"type": "string"}, "count": {"type": "integer"}},
              "required": ["color", "count"], "additionalProperties": False}
    reply = client.responses.create(model=MODEL, input="Give a color and a number as JSON.", temperature=0,
                                    max_output_tokens=60, store=False,
                                    text={"format": {"type": "json_schema", "name": "pick", "schema": schema,
                                                     "strict": True}})
    parsed = json.loads(reply.output_text)
    assert set(parsed) == {"color", "count"} and isinstance(parsed["count"], int)
    assert reply.text.format.type == "json_schema"


def test_get_input_items_delete_and_404s(client, app_url):
    items = [{"role": "user", "content": "Remember the word apple."},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
             {"role": "user", "content": [{"type": "input_text", "text": "Which word?"}]}]
    reply = client.responses.create(model=MODEL, input=items, temperature=0, max_output_tokens=8,
                                    metadata={"case": "crud"})
    got = client.responses.retrieve(reply.id)
    assert got.id == reply.id and got.output_text == reply.output_text and got.metadata == {"case": "crud"}
    listed = client.responses.input_items.list(reply.id)
    assert [i.role for i in listed.data] == ["user", "assistant", "user"][::-1]  # desc by default
    with pytest.raises(openai.BadRequestError, match="synchronously"):  # nothing runs in the background here
        client.responses.cancel(reply.id)
    asc = client.responses.input_items.list(reply.id, order="asc", limit=1)
    assert asc.data[0].role == "user" and asc.has_more
    after = client.responses.input_items.list(reply.id, order="asc", after=asc.data[0].id)
    assert [i.role for i in after.data] == ["assistant", "user"] and not after.has_more
    before = httpx.get(f"{app_url}/v1/responses/{reply.id}/input_items",
                       params={"order": "asc", "before": after.data[-1].id}).json()
    assert [i["role"] for i in before["data"]] == ["user", "assistant"]
    deleted = httpx.delete(f"{app_url}/v1/responses/{reply.id}").json()
    assert deleted == {"id": reply.id, "object": "response", "deleted": True}
    error = assert_openai_error(httpx.get(f"{app_url}/v1/responses/{reply.id}"), 404)
    assert reply.id in error["message"] and "deleted" in error["message"]
    body = {"model": MODEL, "input": "more", "previous_response_id": reply.id}
    error = assert_openai_error(httpx.post(f"{app_url}/v1/responses", json=body), 404)
    assert "deleted" in error["message"]
    assert_openai_error(httpx.get(f"{app_url}/v1/responses/resp_nope"), 404)
    assert_openai_error(httpx.post(f"{app_url}/v1/responses/resp_nope/cancel"), 404)


def test_store_false_keeps_nothing(client, app_url):
    reply = client.responses.create(model=MODEL, input="Hello", max_output_tokens=4, store=False)
    assert reply.store is False
    assert_openai_error(httpx.get(f"{app_url}/v1/responses/{reply.id}"), 404)
    body = {"model": MODEL, "input": "more", "previous_response_id": reply.id}
    assert_openai_error(httpx.post(f"{app_url}/v1/responses", json=body), 404)


@pytest.mark.parametrize("extra, param", [
    ({"background": True}, "background"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"include": ["web_search_call.results"]}, "include"),
    ({"truncation": "auto"}, "truncation"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]},
     "input[0].content[0].type"),
    ({"text": {"format": {"type": "json_schema", "name": "bad name", "schema": {}}}}, "text.format.name"),
    ({"frobnicate": 1}, "frobnicate"),
])
def test_unserved_fields_are_a_400_naming_them(app_url, extra, param):
    body = {"model": MODEL, "input": "Hi", **extra}
    error = assert_openai_error(httpx.post(f"{app_url}/v1/responses", json=body), 400)
    assert error.get("param") == param or param in error["message"], error


def test_chain_started_on_a_session(client, facts_session):
    first = client.responses.create(model=MODEL, input="What is the secret code of the vault?", temperature=0,
                                    max_output_tokens=16, extra_body={"session_id": facts_session["id"]})
    assert first.usage.input_tokens_details.cached_tokens == facts_session["tokens_read"]
    assert "7341" in first.output_text
    second = client.responses.create(model=MODEL, input="Where was Alice born?", temperature=0,
                                     max_output_tokens=16, previous_response_id=first.id)
    assert second.usage.input_tokens_details.cached_tokens > first.usage.input_tokens
    assert second.usage.input_tokens - second.usage.input_tokens_details.cached_tokens < 30


def test_long_chain_is_compressed_newest_turn_whole(client, app_url):
    first = client.responses.create(model=MODEL, input=document(70) + "\nWhat is the secret code of the vault?",
                                    temperature=0, max_output_tokens=12)
    view = httpx.get(f"{app_url}/v1/sessions/{first.id}").json()
    assert view["tokens_kept"] == view["tokens_read"]  # a first turn is kept whole
    history = view["tokens_read"]
    assert history >= 1024  # past responses.compress_after_tokens: the next stored turn compresses it
    second = client.responses.create(model=MODEL, input="Where was Alice born?", temperature=0,
                                     max_output_tokens=12, previous_response_id=first.id)
    view = httpx.get(f"{app_url}/v1/sessions/{second.id}").json()
    newest = view["tokens_read"] - history
    ratio = DEFAULT_PRESS["compression_ratio"]
    assert abs(view["tokens_kept"] - (history * (1 - ratio) + newest)) <= 2, view
    third = client.responses.create(model=MODEL, input="When is the meeting?", temperature=0,
                                    max_output_tokens=12, previous_response_id=second.id)
    assert third.usage.input_tokens_details.cached_tokens == view["tokens_read"]


def decode_actor_of(app_url: str, session_id: str):
    replica = httpx.get(f"{app_url}/v1/sessions/{session_id}").json()["replica"]
    decode = httpx.get(f"{app_url}/admin/stats", timeout=60).json()["replicas"][replica]["actor_ids"]["decode"]
    return ray.get_actor(decode["name"], namespace=decode["namespace"])


def test_chain_survives_the_loss_of_its_cache(client, app_url):
    chain = turns(client, QUESTIONS[:2])
    ask = dict(model=MODEL, input=QUESTIONS[2], previous_response_id=chain[-1].id, temperature=0,
               max_output_tokens=24, store=False)
    before = client.responses.create(**ask)
    counters = lambda: httpx.get(f"{app_url}/admin/stats", timeout=60).json()["cluster"]["counters"]
    lost = counters().get("copies_lost", 0)
    ray.get(decode_actor_of(app_url, chain[-1].id).free.remote(chain[-1].id))  # the replica loses its copy
    wait_for(lambda: counters().get("copies_lost", 0) > lost, 60, "the control plane to see the lost copy")
    after = client.responses.create(**ask)  # waits for the rebuild from the stored token ids
    assert after.output_text == before.output_text
    assert after.usage == before.usage
