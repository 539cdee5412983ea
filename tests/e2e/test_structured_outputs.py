"""Structured outputs through the official openai client against the live app: JSON object and
JSON schema replies parse and validate (jsonschema) for 20 prompts on a stored session and 20
plain requests, streamed and not, with n=3; vLLM's guided_* / structured_outputs extras; a
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
        n: int = 1) -> list[str]:
    """The choices' texts of one chat completion (streamed or not); every choice must end by EOS."""
    messages = user(prompt) if session_id else user(document(4) + "\n\n" + prompt)
    extra = {"session_id": session_id} if session_id else {}
    kwargs = dict(model=MODEL, messages=messages, max_tokens=MAX_TOKENS, response_format=response_format, n=n,
                  temperature=0 if n == 1 else 0.8, seed=11, extra_body=extra)
    if not stream:
        reply = client.chat.completions.create(**kwargs)
        assert [c.finish_reason for c in reply.choices] == ["stop"] * n, reply
        return [c.message.content for c in reply.choices]
    texts, finish = [""] * n, [None] * n
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            finish[c.index] = c.finish_reason or finish[c.index]
    assert finish == ["stop"] * n, (finish, texts)
    return texts


def check(text: str, response_format: dict) -> dict:
    value = json.loads(text)
    assert isinstance(value, dict), text
    if response_format["type"] == "json_schema":
        jsonschema.validate(value, response_format["json_schema"]["schema"])
    return value


def run_all(client, prompts, response_format, stream, session_id) -> list[dict]:
    with ThreadPoolExecutor(PARALLEL) as pool:
        texts = list(pool.map(lambda p: ask(client, p, response_format, stream, session_id)[0], prompts))
    return [check(t, response_format) for t in texts]


@pytest.mark.parametrize("response_format, stream", [(RESPONSE_SCHEMA, False), (JSON_OBJECT, True)],
                         ids=["json_schema", "json_object-stream"])
def test_twenty_extractions_on_a_stored_session_are_valid_json(client, facts_session, response_format, stream):
    half = PROMPTS[:10] if stream else PROMPTS[10:]
    values = run_all(client, half, response_format, stream, facts_session["id"])
    assert len(values) == 10


@pytest.mark.parametrize("response_format, stream", [(RESPONSE_SCHEMA, True), (JSON_OBJECT, False)],
                         ids=["json_schema-stream", "json_object"])
def test_twenty_plain_requests_are_valid_json(client, response_format, stream):
    half = PROMPTS[:10] if stream else PROMPTS[10:]
    values = run_all(client, half, response_format, stream, None)
    assert len(values) == 10


def test_a_session_extraction_finds_the_planted_facts(client, facts_session, reference):
    """Greedy + schema on the session: the server answers what the in-process engine answers, token
    for token (same press, same grammar), and the model does find the planted facts."""
    from deployments.engine.sampling import GuidedSpec

    text = ask(client, PROMPTS[0], RESPONSE_SCHEMA, False, facts_session["id"])[0]
    want = reference.answer(document(), user(PROMPTS[0]), MAX_TOKENS,
                            guided=GuidedSpec(kind="json_schema", spec=json.dumps(FACTS_SCHEMA, sort_keys=True)))[0]
    assert text == want
    assert check(text, RESPONSE_SCHEMA)["meeting_day"] == "Thursday"


@pytest.mark.parametrize("stream", [False, True], ids=["collect", "stream"])
def test_n3_sampled_choices_all_validate(client, facts_session, stream):
    for session_id in (facts_session["id"], None):
        texts = ask(client, PROMPTS[9], RESPONSE_SCHEMA, stream, session_id, n=3)
        assert len(texts) == 3
        for text in texts:
            check(text, RESPONSE_SCHEMA)


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
    ok = ask(client, PROMPTS[1], RESPONSE_SCHEMA, False, facts_session["id"])
    check(ok[0], RESPONSE_SCHEMA)
