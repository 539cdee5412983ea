"""Tool calling through the official openai client against the live app (docs/tools.md): named,
required, auto and none on a stored session and on plain requests; streamed replies add up to
the non-streamed ones byte for byte (ids included); n=2; a history round trip with tool
messages; every bad tools / history input is a 400 naming its field."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.e2e.conftest import assert_openai_error, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
TIME = {"type": "object", "properties": {"zone": {"$ref": "#/$defs/Zone"}}, "required": ["zone"],
        "$defs": {"Zone": {"type": "string", "enum": ["UTC", "CET", "PST"]}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
                                           "parameters": WEATHER, "strict": True}},
         {"type": "function", "function": {"name": "get_time", "description": "Current time in a zone",
                                           "parameters": TIME}}]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
QUESTION = "What is the weather in Lisbon, in celsius?"
MAX_TOKENS = 64


def ask(client: openai.OpenAI, session_id: str | None, **fields):
    extra = {"session_id": session_id} if session_id else {}
    fields.setdefault("messages", user(QUESTION))
    fields.setdefault("max_tokens", MAX_TOKENS)
    return client.chat.completions.create(model=MODEL, tools=TOOLS, temperature=0, extra_body=extra, **fields)


def assert_calls(message, names: set[str] | None = None) -> list:
    calls = message.tool_calls or []
    assert calls, message
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert names is None or call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert len({c.id for c in calls}) == len(calls)
    return calls


@pytest.fixture(params=["session", "plain"])
def session_id(request, facts_session) -> str | None:
    return facts_session["id"] if request.param == "session" else None


def test_named_choice_calls_that_tool(client, session_id):
    reply = ask(client, session_id, tool_choice=NAMED)
    choice = reply.choices[0]
    calls = assert_calls(choice.message, {"get_weather"})
    assert len(calls) == 1 and choice.message.content is None and choice.finish_reason == "tool_calls"


def test_required_choice_calls_at_least_one_tool(client, session_id):
    reply = ask(client, session_id, tool_choice="required", max_tokens=128)
    assert reply.choices[0].finish_reason == "tool_calls"
    assert_calls(reply.choices[0].message, set(SCHEMAS))


def test_parallel_tool_calls_false_is_one_call(client):
    reply = ask(client, None, tool_choice="required", parallel_tool_calls=False, max_tokens=128)
    assert len(assert_calls(reply.choices[0].message)) == 1


def test_auto_is_text_or_valid_calls(client, session_id):
    choice = ask(client, session_id, max_tokens=128).choices[0]  # tool_choice defaults to auto with tools
    if choice.message.tool_calls:
        assert_calls(choice.message)
        assert choice.message.content is None and choice.finish_reason == "tool_calls"
    else:
        assert isinstance(choice.message.content, str) and "<tool_call>" not in choice.message.content
        assert choice.finish_reason in ("stop", "length")


def test_none_never_calls(client, session_id):
    choice = ask(client, session_id, tool_choice="none", max_tokens=16).choices[0]
    assert choice.message.tool_calls is None and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")


def streamed(client: openai.OpenAI, session_id: str | None, **fields) -> list[dict]:
    """Each choice's content, tool calls and finish_reason assembled from the stream."""
    extra = {"session_id": session_id} if session_id else {}
    out: dict[int, dict] = {}
    headers: dict[int, list[int]] = {}
    for chunk in client.chat.completions.create(model=MODEL, tools=TOOLS, temperature=0, max_tokens=MAX_TOKENS,
                                                messages=user(QUESTION), stream=True, extra_body=extra, **fields):
        for c in chunk.choices:
            choice = out.setdefault(c.index, {"content": None, "tool_calls": [], "finish_reason": None})
            if c.delta.content:
                choice["content"] = (choice["content"] or "") + c.delta.content
            for piece in c.delta.tool_calls or ():
                if piece.id is not None:
                    headers.setdefault(c.index, []).append(piece.index)
                    assert piece.index == len(choice["tool_calls"]) and piece.function.name
                    choice["tool_calls"].append({"id": piece.id, "type": piece.type, "function": {
                        "name": piece.function.name, "arguments": piece.function.arguments or ""}})
                else:
                    assert piece.function.name is None  # the name goes out once, with the id
                    choice["tool_calls"][piece.index]["function"]["arguments"] += piece.function.arguments
            choice["finish_reason"] = c.finish_reason or choice["finish_reason"]
    return [out[i] for i in sorted(out)]


def plain_reply(reply) -> list[dict]:
    return [{"content": c.message.content,
             "tool_calls": [t.model_dump() for t in c.message.tool_calls or ()],
             "finish_reason": c.finish_reason} for c in reply.choices]


@pytest.mark.parametrize("tool_choice", [NAMED, "required", "auto"])
def test_streamed_equals_non_streamed(client, session_id, tool_choice):
    whole = plain_reply(ask(client, session_id, tool_choice=tool_choice))
    assert streamed(client, session_id, tool_choice=tool_choice) == whole


def test_two_choices_each_call_with_their_own_ids(client, session_id):
    reply = ask(client, session_id, tool_choice="required", n=2)
    ids = [call.id for choice in reply.choices for call in assert_calls(choice.message)]
    assert len(reply.choices) == 2 and len(set(ids)) == len(ids)  # greedy: same calls, ids per choice
    assert streamed(client, session_id, tool_choice="required", n=2) == plain_reply(reply)


def test_history_round_trip_with_tool_messages(client, session_id):
    first = ask(client, session_id, tool_choice="required", max_tokens=128).choices[0].message
    calls = assert_calls(first)
    history = [*user(QUESTION), {"role": "assistant", "content": None,
                                 "tool_calls": [c.model_dump() for c in calls]}]
    history += [{"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temperature_c": 21})} for c in calls]
    answer = ask(client, session_id, messages=history, tool_choice="none", max_tokens=24).choices[0]
    assert answer.message.tool_calls is None and answer.message.content
    again = ask(client, session_id, messages=history + [{"role": "assistant", "content": answer.message.content},
                                                       *user("And the time in CET?")],
                tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert_calls(again.choices[0].message, {"get_time"})


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'}}


@pytest.mark.parametrize("fields, param, code", [
    ({"messages": [*user("hi"), {"role": "assistant", "content": None, "tool_calls": [CALL]},
                   {"role": "tool", "tool_call_id": "call_404", "content": "x"}]}, "messages[2].tool_call_id",
     "invalid_request"),
    ({"messages": [*user("hi"), {"role": "tool", "tool_call_id": "call_1", "content": "x"}]}, "messages[1].role",
     "invalid_request"),
    ({"messages": [*user("hi"), {"role": "assistant", "content": None, "tool_calls": [
        {**CALL, "function": {"name": "get_weather", "arguments": "{city: Lisbon"}}]}]},
     "messages[1].tool_calls[0].function.arguments", "invalid_request"),
    ({"tools": [TOOLS[0], {"type": "function", "function": {"name": "odd", "parameters": {
        "type": "object", "if": {"type": "object"}, "then": {}}}}]}, "tools[1].function.parameters",
     "unsupported_schema"),
    ({"tool_choice": {"type": "function", "function": {"name": "launch"}}}, "tool_choice.function.name",
     "invalid_request"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name",
     "invalid_request"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "unsupported_parameter"),
    ({"tools": [TOOLS[0]] * 129}, "tools", "limit_exceeded"),
    ({"tools": [{"type": "function", "function": {"name": "big", "description": "x" * 70_000}}]}, "tools[0]",
     "limit_exceeded"),
    ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice", "invalid_request"),
])
def test_bad_tool_input_is_a_400_naming_the_field(http, fields, param, code):
    body = {"model": MODEL, "messages": user(QUESTION), "tools": TOOLS, "max_tokens": 4, **fields}
    error = assert_openai_error(http.post("/v1/chat/completions", json=body), 400, code)
    assert error["param"] == param, error


def test_the_openapi_document_shows_the_tool_fields(http):
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    request = schemas["ChatCompletionRequest"]["properties"]
    assert {"tools", "tool_choice", "parallel_tool_calls"} <= set(request)
    assert "tool_calls" in schemas["ChatMessage"]["properties"] and "ToolCall" in schemas
