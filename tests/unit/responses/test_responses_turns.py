"""A Responses chain's turns as token ids, with the embedded model's real tokenizer (no weights):
a continuation after any output item (a message, one function_call, parallel calls, text and a
call) prefills only its new input, and the chain's cache (first prompt + the stored answer +
the template's closing + the continuation) is token for token the prompt a client re-sending the
same items reads - the stored turn is rendered as the continuation renders the items.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deployments.engine.prompt import PromptRenderer
from deployments.ingress.responses import function_tools
from deployments.ingress.responses.conversation import ConversationRenderer
from deployments.ingress.responses.items import parse_input
from deployments.ingress.responses.routes import ResponseRoutes
from deployments.ingress.responses.schema import ResponseCreateRequest
from deployments.ingress.responses.state import Parent
from tests.unit.engine.tokenizer_fixtures import embedded_tokenizer

WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {
    "zone": {"type": "string"}}, "required": ["zone"]}}
ASK = "What is the weather and the time in Oslo?"


@pytest.fixture(scope="module")
def routes():
    return SimpleNamespace(conversations=ConversationRenderer(PromptRenderer(embedded_tokenizer())))


def turn(routes, fields: dict, parent: Parent | None):
    """The routes' own planning and rendering of one request: (Turn, ToolPlan)."""
    req = ResponseCreateRequest.model_validate({"model": "m", **fields})
    parsed = parse_input(req.input)
    tools = ResponseRoutes._responses_tool_plan(req, parsed, parent)
    return ResponseRoutes._turn(routes, req, parsed, parent, tools), tools


def stored(routes, first, tools, generated: str, rid: str = "resp_1") -> tuple[Parent, list[int], list[dict]]:
    """What Finisher.record keeps for ``generated`` (as the grammar made it): the parent record, the
    cache's token ids and the output items (function_call items as the reply has them)."""
    if tools.parses:
        content, calls = function_tools.read_answer(tools, generated, rid)
        answer = function_tools.answer_turn(content, calls)
    else:
        content, calls, answer = generated, [], generated
    conversations = routes.conversations
    ids = first.input_ids + conversations.renderer.encode(answer) + conversations.closing_ids
    output = ([{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": content}]}]
              if content else [])
    output += [{"type": "function_call", **call} for call in calls]
    record = {"id": rid, "read_tokens": len(ids), "context": {}, "response": {
        "object": {"output": output}, "conversation": [*first.conversation, {"role": "assistant", "content": answer}],
        "instructions": None, "tools_block": function_tools.held_block(tools, "")}}
    return Parent(record), ids, output


def resent_items(output: list[dict]) -> list[dict]:
    """The reply's output items as a client sends them back (openai-python's model_dump)."""
    return [{"role": "assistant", "content": item["content"][0]["text"]} if item["type"] == "message" else item
            for item in output]


CASES = {
    "message": ({}, "It is sunny in Oslo."),
    "required call (JSON array)": ({"tool_choice": "required", "parallel_tool_calls": False},
                                   '[{"name": "get_weather", "parameters": {"city": "Oslo"}}]'),
    "named call (arguments)": ({"tool_choice": {"type": "function", "name": "get_weather"}}, '{"city": "Oslo"}'),
    "auto call": ({"tool_choice": "auto"}, '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>'),
    "parallel calls": ({"tool_choice": "required"}, '[{"name": "get_weather", "parameters": {"city": "Oslo"}}, '
                                                    '{"name": "get_time", "parameters": {"zone": "CET"}}]'),
    "auto parallel calls": ({}, '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
                                '<tool_call>{"name": "get_time", "arguments": {"zone": "CET"}}</tool_call>'),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("continuation_options", [{}, {"parallel_tool_calls": False}, {"tool_choice": "none"}])
def test_a_continuation_prefills_only_its_new_items_and_equals_the_resent_prompt(routes, case, continuation_options):
    options, generated = CASES[case]
    tools_list = [WEATHER, TIME]
    first, tools = turn(routes, {"input": ASK, "tools": tools_list, **options}, None)
    parent, cache_ids, output = stored(routes, first, tools, generated)
    calls = [item for item in output if item["type"] == "function_call"]
    new = ([{"type": "function_call_output", "call_id": c["call_id"], "output": f"result {k}"} for k, c in enumerate(calls)]
           or [{"role": "user", "content": "And tomorrow?"}])
    after, _ = turn(routes, {"input": new, "tools": tools_list, "previous_response_id": parent.id,
                             **continuation_options}, parent)
    text = routes.conversations.renderer.tokenizer.decode(after.input_ids)
    assert "<tools>" not in text and text.startswith("<|im_start|>user\n")  # only the new items
    assert len(after.input_ids) < 20 + 12 * len(new)
    # the chain's cache + the new tokens == the prompt of the same items re-sent without previous_response_id
    resent, _ = turn(routes, {"input": [{"role": "user", "content": ASK}, *resent_items(output), *new],
                              "tools": tools_list, **options, **continuation_options}, None)
    if continuation_options.get("tool_choice") == "none":
        return  # a re-sent request with tool_choice none shows no tools; the chain keeps the ones it shows
    if continuation_options.get("parallel_tool_calls") is False and options.get("parallel_tool_calls") is not False:
        return  # the re-sent prompt words the block for this turn's option; the chain keeps its first wording
    assert cache_ids + after.input_ids == resent.input_ids


def test_the_stored_turn_renders_like_the_continuation_renders_the_items():
    """answer_turn == the history rendering of the same output items (render.py), for every form."""
    from deployments.ingress.tools import render_history

    for case, (options, generated) in CASES.items():
        req = ResponseCreateRequest.model_validate({"model": "m", "input": ASK, "tools": [WEATHER, TIME], **options})
        tools = ResponseRoutes._responses_tool_plan(req, parse_input(req.input), None)
        content, calls = function_tools.read_answer(tools, generated, "resp_1")
        items = parse_input([{"type": "function_call", **c} for c in calls]
                            or [{"role": "assistant", "content": content}]).messages
        assert function_tools.answer_turn(content, calls) == render_history(items)[0]["content"], case
        if len(calls) == 2:
            assert function_tools.answer_turn(content, calls).count("\n") == 1  # one call per line, one turn
            assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Oslo"}, {"zone": "CET"}]


def test_new_tools_are_rendered_at_the_turn_that_adds_them(routes):
    first, tools = turn(routes, {"input": ASK, "tools": [WEATHER]}, None)
    parent, _, _ = stored(routes, first, tools, "It is sunny.")
    after, more = turn(routes, {"input": "And the time?", "tools": [WEATHER, TIME], "previous_response_id": "resp_1"},
                       parent)
    assert "<tools>" in routes.conversations.renderer.tokenizer.decode(after.input_ids)
    assert function_tools.held_block(more, parent.tools_block) == function_tools.block(more)
    same, plan = turn(routes, {"input": "And the time?", "tools": [WEATHER], "parallel_tool_calls": False,
                               "previous_response_id": "resp_1"}, parent)
    assert function_tools.held_block(plan, parent.tools_block) == parent.tools_block  # the chain's wording
