"""tools / tool_choice / history parsing: every bad input is a ToolError naming its field."""

import pytest

from deployments.ingress.tools import ToolChoice, ToolError, check_history, parse_tool_choice, parse_tools
from deployments.ingress.tools.schema import EMPTY_PARAMETERS

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}, "strict": True}}
ADD = {"type": "function", "function": {"name": "add"}}


def call(cid: str, name: str = "get_weather", arguments: str = '{"city": "Lisbon"}') -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_tools_parse_with_defaults():
    weather, add = parse_tools([WEATHER, ADD])
    assert (weather.name, weather.strict, weather.description) == ("get_weather", True, "Weather of a city")
    assert add.parameters == EMPTY_PARAMETERS and add.description is None


@pytest.mark.parametrize("tools, param", [
    ({"type": "function"}, "tools"),
    ([{"type": "custom", "custom": {"name": "x"}}], "tools[0].type"),
    ([{"type": "function"}], "tools[0].function"),
    ([{"type": "function", "function": {}}], "tools[0].function.name"),
    ([{"type": "function", "function": {"name": "no spaces"}}], "tools[0].function.name"),
    ([{"type": "function", "function": {"name": "f", "parameters": "{}"}}], "tools[0].function.parameters"),
    ([{"type": "function", "function": {"name": "f", "strict": "yes"}}], "tools[0].function.strict"),
    ([{"type": "function", "function": {"name": "f", "extra": 1}}], "tools[0].function.extra"),
    ([ADD, ADD], "tools[1].function.name"),
])
def test_bad_tools_name_the_field(tools, param):
    with pytest.raises(ToolError) as info:
        parse_tools(tools)
    assert info.value.param == param


def test_tool_choice_forms_and_defaults():
    tools = parse_tools([WEATHER, ADD])
    assert parse_tool_choice(None, tools) == ToolChoice("auto")
    assert parse_tool_choice(None, ()) == ToolChoice("none")
    assert parse_tool_choice("none", ()) == ToolChoice("none")
    assert parse_tool_choice("required", tools) == ToolChoice("required")
    assert parse_tool_choice({"type": "function", "function": {"name": "add"}}, tools) == ToolChoice("named", "add")


@pytest.mark.parametrize("choice, param", [
    ("sometimes", "tool_choice"),
    ({"type": "function", "function": {"name": "nope"}}, "tool_choice.function.name"),
    ({"type": "allowed_tools", "allowed_tools": {}}, "tool_choice.type"),
    ({"type": "function"}, "tool_choice.function"),
])
def test_bad_tool_choice_names_the_field(choice, param):
    with pytest.raises(ToolError) as info:
        parse_tool_choice(choice, parse_tools([WEATHER]))
    assert info.value.param == param


def test_a_choice_that_calls_needs_tools():
    with pytest.raises(ToolError, match="only allowed when 'tools'"):
        parse_tool_choice("required", ())


def test_a_good_history_passes():
    check_history([{"role": "user", "content": "weather?"},
                   {"role": "assistant", "content": None, "tool_calls": [call("call_1"), call("call_2")]},
                   {"role": "tool", "tool_call_id": "call_2", "content": "sunny"},
                   {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                   {"role": "assistant", "content": "Sunny and rainy."}])


@pytest.mark.parametrize("messages, param, words", [
    ([{"role": "tool", "tool_call_id": "call_1", "content": "x"}], "messages[0].role", "must follow"),
    ([{"role": "assistant", "content": None, "tool_calls": [call("call_1")]},
      {"role": "tool", "tool_call_id": "call_9", "content": "x"}], "messages[1].tool_call_id", "call_9"),
    ([{"role": "assistant", "content": None, "tool_calls": [call("call_1")]},
      {"role": "user", "content": "and?"}, {"role": "tool", "tool_call_id": "call_1", "content": "x"}],
     "messages[2].role", "must follow"),
    ([{"role": "assistant", "content": None, "tool_calls": [call("call_1", arguments="{city: Lisbon")]}],
     "messages[0].tool_calls[0].function.arguments", "not JSON"),
    ([{"role": "assistant", "content": None, "tool_calls": [call("call_1"), call("call_1")]}],
     "messages[0].tool_calls[1].id", "twice"),
])
def test_bad_history_names_the_field(messages, param, words):
    with pytest.raises(ToolError, match=words) as info:
        check_history(messages)
    assert info.value.param == param
