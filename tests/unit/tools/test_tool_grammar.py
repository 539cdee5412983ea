"""The constraints of tool_choice on the real embedded model: every call validates, auto is text
or well-formed calls, a schema llguidance cannot compile is named."""

import json

import jsonschema
import pytest

from deployments.engine.sampling import SamplingParams
from deployments.ingress.tools import ToolChoice, ToolError, parse_tools, parse_turn, plan_tools
from kvpool import PressSpec

WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                  "required": ["city", "unit"], "additionalProperties": False}
TIME_PARAMS = {"type": "object", "properties": {"zone": {"$ref": "#/$defs/Zone"}}, "required": ["zone"],
               "$defs": {"Zone": {"type": "string", "enum": ["UTC", "CET"]}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_PARAMS}},
         {"type": "function", "function": {"name": "get_time", "parameters": TIME_PARAMS}}]
SCHEMAS = {"get_weather": WEATHER_PARAMS, "get_time": TIME_PARAMS}
QUESTION = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


@pytest.fixture(scope="module")
def context(engine):
    return engine.prefill("You are a weather assistant.", PressSpec())


def answer(engine, context, choice, parallel=True, max_tokens=60):
    plan = plan_tools(TOOLS, choice, parallel, QUESTION)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, guided=plan.guided)
    text, _, finish = engine.answer(context, plan.prompt_messages(QUESTION, placement="first_user"), params)
    return parse_turn(text, plan.choice), finish, text


def assert_valid(calls):
    for call in calls:
        assert call.complete
        jsonschema.validate(json.loads(call.arguments), SCHEMAS[call.name])


def test_named_choice_is_that_tool_with_valid_arguments(engine, context):
    turn, finish, _ = answer(engine, context, {"type": "function", "function": {"name": "get_weather"}})
    assert finish == "stop" and [c.name for c in turn.calls] == ["get_weather"]
    assert_valid(turn.calls)


def test_required_choice_is_at_least_one_valid_call(engine, context):
    turn, finish, _ = answer(engine, context, "required", max_tokens=120)
    assert finish == "stop" and turn.calls
    assert_valid(turn.calls)


def test_required_without_parallel_calls_is_exactly_one(engine, context):
    turn, _, _ = answer(engine, context, "required", parallel=False, max_tokens=120)
    assert len(turn.calls) == 1
    assert_valid(turn.calls)


def test_auto_is_text_or_well_formed_calls(engine, context):
    turn, finish, text = answer(engine, context, "auto", max_tokens=120)
    if turn.calls:
        assert text.startswith("<tool_call>") and turn.content is None
        assert_valid(turn.calls)
    else:
        assert "<tool_call>" not in text and turn.content == text


def test_auto_grammar_refuses_a_broken_call(engine):
    plan = plan_tools(TOOLS, "auto", True, QUESTION)
    matcher = engine.grammars.matcher(plan.guided)
    ids = engine.tokenizer.encode('<tool_call>{"name": "delete_all"', add_special_tokens=False)
    assert not all(matcher.consume_token(t) for t in ids)


def test_a_schema_the_engine_cannot_compile_is_named():
    bad = [TOOLS[0], {"type": "function", "function": {"name": "odd", "parameters": {
        "type": "object", "if": {"type": "object"}, "then": {}}}}]
    with pytest.raises(ToolError, match="'odd'.*if") as info:
        plan_tools(bad, "auto", True, QUESTION)
    assert (info.value.param, info.value.code) == ("tools[1].function.parameters", "unsupported_schema")


def test_none_has_no_constraint_and_no_tools_block():
    plan = plan_tools(TOOLS, "none", None, QUESTION)
    assert plan.guided is None and not plan.parses
    assert plan.prompt_messages(QUESTION) == QUESTION


def test_conflicting_defs_are_refused():
    other = {"type": "object", "properties": {"zone": {"$ref": "#/$defs/Zone"}}, "$defs": {"Zone": {"type": "integer"}}}
    tools = parse_tools([TOOLS[1], {"type": "function", "function": {"name": "other", "parameters": other}}])
    from deployments.ingress.tools import guided_spec
    with pytest.raises(ToolError, match="Zone"):
        guided_spec(tools, ToolChoice("required"))


def test_declared_objects_are_closed_and_free_ones_stay_open():
    from deployments.ingress.tools.grammar import closed

    schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}},
                                               "c": {"type": "object"}, "d": {"enum": [{"properties": 1}]}}}
    out = closed(schema)
    assert out["additionalProperties"] is False and out["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["c"] and out["properties"]["d"] == schema["properties"]["d"]
    assert closed({**schema, "additionalProperties": True})["additionalProperties"] is True
