"""Generated text -> tool calls, on whole and partial answers; streamed deltas add up to the reply."""

import json

import pytest

from deployments.ingress.tools import ToolChoice, ToolDeltaStream, call_id, finish_reason, parse_turn, tool_calls

AUTO_CALLS = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Lis\\"bon}"}}</tool_call>\n'
              '<tool_call>{"name": "add", "arguments": {"a": [1, 2.5e3], "b": {"c": null}}}</tool_call>')
REQUIRED = '[{"name": "add", "parameters": {"a": 1}}, {"name": "get_weather", "parameters": {"city": "x]"}}]'
NAMED = '{"city": "Lisbon", "days": 3}'
CASES = [(ToolChoice("auto"), AUTO_CALLS), (ToolChoice("auto"), "Just text, <tool no call."),
         (ToolChoice("auto"), "<tool"), (ToolChoice("required"), REQUIRED), (ToolChoice("named", "get_weather"), NAMED)]


def test_auto_calls_keep_the_generated_arguments_text():
    turn = parse_turn(AUTO_CALLS, ToolChoice("auto"))
    assert turn.content is None
    assert [(c.name, json.loads(c.arguments), c.complete) for c in turn.calls] == [
        ("get_weather", {"city": 'Lis"bon}'}, True), ("add", {"a": [1, 2500.0], "b": {"c": None}}, True)]
    assert turn.calls[1].arguments == '{"a": [1, 2.5e3], "b": {"c": null}}'
    assert finish_reason(turn, "stop") == "tool_calls"


def test_auto_text_is_content():
    turn = parse_turn("Lisbon is sunny.", ToolChoice("auto"))
    assert (turn.content, turn.calls, finish_reason(turn, "stop")) == ("Lisbon is sunny.", [], "stop")
    assert parse_turn("<tool", ToolChoice("auto"), final=False).content is None  # may still become a call
    assert parse_turn("<tool", ToolChoice("auto"), final=True).content == "<tool"


def test_required_and_named():
    turn = parse_turn(REQUIRED, ToolChoice("required"))
    assert [(c.name, c.arguments) for c in turn.calls] == [("add", '{"a": 1}'), ("get_weather", '{"city": "x]"}')]
    named = parse_turn(NAMED, ToolChoice("named", "get_weather"))
    assert [(c.name, c.arguments, c.complete) for c in named.calls] == [("get_weather", NAMED, True)]


def test_a_cut_answer_keeps_its_partial_call_and_finish_reason():
    turn = parse_turn(AUTO_CALLS[:60], ToolChoice("auto"))
    assert turn.calls[0].name == "get_weather" and not turn.calls[0].complete
    assert finish_reason(turn, "length") == "length"
    assert finish_reason(turn, "stop") == "stop"  # a stop string cut the call: not a finished call


def test_ids_are_stable_per_seed_and_distinct_per_call():
    turn = parse_turn(AUTO_CALLS, ToolChoice("auto"))
    first, second = tool_calls(turn, "req:0"), tool_calls(turn, "req:0")
    assert first == second and first[0]["id"] != first[1]["id"]
    assert first[0]["id"] == call_id("req:0", 0) and first[0]["id"].startswith("call_")
    assert tool_calls(turn, "req:1")[0]["id"] != first[0]["id"]


def assemble(deltas: list[dict]) -> tuple[str | None, list[dict]]:
    content, calls = None, []
    for delta in deltas:
        if "content" in delta:
            content = (content or "") + delta["content"]
        for piece in delta.get("tool_calls", ()):
            if "id" in piece:
                assert piece["index"] == len(calls)
                calls.append({"id": piece["id"], "type": piece["type"], "function": dict(piece["function"])})
            else:
                calls[piece["index"]]["function"]["arguments"] += piece["function"]["arguments"]
    return content, calls


@pytest.mark.parametrize("choice, text", CASES)
@pytest.mark.parametrize("step", [1, 3, 7])
def test_streamed_deltas_add_up_to_the_non_streamed_reply(choice, text, step):
    stream = ToolDeltaStream(choice, "seed")
    deltas = []
    for end in range(0, len(text), step):
        deltas += stream.feed(text[:end])
    deltas += stream.feed(text, final=True)
    turn = parse_turn(text, choice)
    assert assemble(deltas) == (turn.content, tool_calls(turn, "seed"))
    headers = [p for d in deltas for p in d.get("tool_calls", ()) if "id" in p]
    assert len(headers) == len(turn.calls)  # the name goes out once per call
