"""Structured outputs through the official openai client against the live app: JSON schema
replies parse and validate (jsonschema) for 20 prompts on a stored session and 20 plain requests,
streamed and not, with n=3; json_object replies are JSON objects; vLLM's guided_* / structured_outputs extras; a
schema the engine cannot compile is a 400 and never reaches a replica."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pytest

from tests.conftest import document
from tests.e2e.conftest import user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FACTS_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["vault_code", "birth_city", "meeting_day"],
    "properties": {"vault_code": {"type": "string", "maxLength": 8}, "birth_city": {"type": "string", "maxLength": 20},
                   "meeting_day": {"type": "string", "enum": DAYS}},
}
RESPONSE_SCHEMA = {"type": "json_schema", "json_schema": {"name": "facts", "schema": FACTS_SCHEMA, "strict": True}}
JSON_OBJECT = {"type": "json_object"}
SUBJECTS = ("the vault code", "Alice's birth city", "the meeting day", "the secret code", "where Alice was born",
            "when the meeting is", "the code of the vault", "the city Alice comes from", "the day of the meeting",
            "the facts")
PROMPTS = tuple(f"{verb} {subject} as JSON." for verb in ("Extract", "Report") for subject in SUBJECTS)  # 20
MAX_TOKENS = 96
PARALLEL = 4


def ask(client: openai.OpenAI, prompt: str, response_format: dict, stream: bool, session_id: str | None,
        n: int = 1) -> list[tuple[str, str]]:
    """(text, finish_reason) of each choice of one chat completion, streamed or not."""
    messages = user(prompt) if session_id else user(document(4) + "\n\n" + prompt)
    extra = {"session_id": session_id} if session_id else {}
    kwargs = dict(model=MODEL, messages=messages, max_tokens=MAX_TOKENS, response_format=response_format, n=n,
                  temperature=0 if n == 1 else 0.8, seed=11, extra_body=extra)
    if not stream:
        reply = client.chat.completions.create(**kwargs)
        return [(c.message.content, c.finish_reason) for c in reply.choices]
    texts, finish = [""] * n, [None] * n
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            finish[c.index] = c.finish_reason or finish[c.index]
    return list(zip(texts, finish))


def check(reply: tuple[str, str], response_format: dict) -> dict:
    """A schema reply ends by itself (forced EOS) and validates."""
    text, finish = reply
    assert finish == "stop", reply
    value = json.loads(text)
    assert isinstance(value, dict), text
    if response_format["type"] == "json_schema":
        jsonschema.validate(value, response_format["json_schema"]["schema"])
    return value


def run_all(client, prompts, response_format, stream, session_id) -> list[tuple[str, str]]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(lambda p: ask(client, p, response_format, stream, session_id)[0], prompts))


@pytest.mark.parametrize("stream", [False, True], ids=["collect", "stream"])
@pytest.mark.parametrize("where", ["session", "plain"])
def test_twenty_schema_extractions_validate(client, facts_session, where, stream):
    """20 prompts on the stored session and 20 plain requests, half streamed (10 per test)."""
    session_id = facts_session["id"] if where == "session" else None
    half = PROMPTS[:10] if stream else PROMPTS[10:]
    for reply in run_all(client, half, RESPONSE_SCHEMA, stream, session_id):
        check(reply, RESPONSE_SCHEMA)


@pytest.mark.parametrize("where, stream", [("session", True), ("plain", False)])
def test_json_object_replies_are_json_objects(client, facts_session, reference, where, stream):
    """json_object has no schema to bound it, and the 135M model often writes a long object: every
    reply is a JSON object as far as it goes (the grammar accepts its bytes), and those that end
    by themselves parse."""
    from deployments.engine.sampling import GuidedSpec

    session_id = facts_session["id"] if where == "session" else None
    replies = run_all(client, PROMPTS[:10] if stream else PROMPTS[10:], JSON_OBJECT, stream, session_id)
    tokenizer = reference.engine.tokenizer
    for text, finish in replies:
        matcher = reference.engine.grammars.matcher(GuidedSpec(kind="json_object"))
        assert text.startswith("{") and matcher.consume_tokens(tokenizer.encode(text, add_special_tokens=False)), text
        if finish == "stop":
            assert matcher.is_accepting() and isinstance(json.loads(text), dict), text
        else:
            assert finish == "length", finish


def test_a_session_extraction_finds_the_planted_facts(client, facts_session, reference):
    """Greedy + schema on the session: the server answers what the in-process engine answers, token
    for token (same press, same grammar), and the model does find the planted facts."""
    from deployments.engine.sampling import GuidedSpec

    reply = ask(client, PROMPTS[0], RESPONSE_SCHEMA, False, facts_session["id"])[0]
    check(reply, RESPONSE_SCHEMA)
    text = reply[0]
    want = reference.answer(document(), user(PROMPTS[0]), MAX_TOKENS,
                            guided=GuidedSpec(kind="json_schema", spec=json.dumps(FACTS_SCHEMA, sort_keys=True)))[0]
    assert text == want
    assert json.loads(text)["meeting_day"] == "Thursday"


@pytest.mark.parametrize("stream", [False, True], ids=["collect", "stream"])
def test_n3_sampled_choices_all_validate(client, facts_session, stream):
    for session_id in (facts_session["id"], None):
        replies = ask(client, PROMPTS[9], RESPONSE_SCHEMA, stream, session_id, n=3)
        assert len(replies) == 3
        for reply in replies:
            check(reply, RESPONSE_SCHEMA)


@pytest.mark.parametrize("extra, accept", [
    ({"guided_choice": ["Lisbon", "Paris", "Rome"]}, lambda t: t in ("Lisbon", "Paris", "Rome")),
    ({"guided_regex": "[0-9]{4}"}, lambda t: len(t) == 4 and t.isdigit()),
    ({"structured_outputs": {"choice": ["yes", "no"]}}, lambda t: t in ("yes", "no")),
    ({"guided_json": {"type": "object", "properties": {"code": {"type": "integer"}}, "required": ["code"],
                      "additionalProperties": False}}, lambda t: isinstance(json.loads(t)["code"], int)),
])
def test_vllm_structured_output_extras(client, facts_session, extra, accept):
    reply = client.chat.completions.create(model=MODEL, messages=user("What is the secret code of the vault?"),
                                           max_tokens=24, temperature=0,
                                           extra_body={"session_id": facts_session["id"], **extra})
    assert reply.choices[0].finish_reason == "stop"
    assert accept(reply.choices[0].message.content), reply.choices[0].message.content


def test_a_schema_that_does_not_compile_is_400_and_the_server_stays_up(client, facts_session):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "if": {}, "then": {}}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=user("hi"), response_format=bad,
                                       extra_body={"session_id": facts_session["id"]})
    error = caught.value.body
    assert error["code"] == "unsupported_schema" and '"if"' in error["message"], error
    assert error["param"] == "response_format"
    with pytest.raises(openai.BadRequestError, match="unclosed character class"):
        client.chat.completions.create(model=MODEL, messages=user("hi"), extra_body={"guided_regex": "[0-9"})
    check(ask(client, PROMPTS[1], RESPONSE_SCHEMA, False, facts_session["id"])[0], RESPONSE_SCHEMA)
