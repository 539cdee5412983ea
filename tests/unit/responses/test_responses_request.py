"""The Responses API request schema, input items, replies and stream events - without a server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.ingress.chat.messages import InvalidField
from deployments.ingress.responses.events import ResponseStream, frame
from deployments.ingress.responses.items import parse_input
from deployments.ingress.responses.replies import input_items_page, skeleton
from deployments.ingress.responses.schema import ResponseCreateRequest
from deployments.ingress.responses.state import Parent, chain_layout


def request(**fields) -> ResponseCreateRequest:
    return ResponseCreateRequest.model_validate({"model": "m", "input": "hi", **fields})


@pytest.mark.parametrize("fields, param", [
    ({"background": True}, "background"), ({"conversation": "c"}, "conversation"), ({"prompt": {"id": "p"}}, "prompt"),
    ({"reasoning": {"effort": "low"}}, "reasoning.effort"), ({"truncation": "auto"}, "truncation"),
    ({"include": ["file_search_call.results"]}, "include"), ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"max_tool_calls": 3}, "max_tool_calls"), ({"service_tier": "flex"}, "service_tier"),
    ({"top_logprobs": 2}, "top_logprobs"),
])
def test_unserved_fields_name_the_field(fields, param):
    assert request(**fields).unserved()[1] == param


def test_served_and_off_values_pass():
    req = request(store=False, stream=True, include=["message.output_text.logprobs"], top_logprobs=2,
                  reasoning={"effort": None}, truncation="disabled", metadata={"a": "b"}, user="u",
                  parallel_tool_calls=True, prompt_cache_key="k", service_tier="auto")
    assert req.unserved() is None and req.logprobs() and not req.stores and req.streams


def test_text_format_maps_to_chat_response_format():
    schema = {"type": "object"}
    fmt = request(text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}})
    assert fmt.text.response_format() == {"type": "json_schema",
                                          "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert request(text={"format": {"type": "json_object"}}).text.response_format() == {"type": "json_object"}
    assert request(text={"format": {"type": "text"}}).text.response_format() is None
    with pytest.raises(ValidationError, match="text.format.name"):
        request(text={"format": {"type": "json_schema", "name": "a b", "schema": schema}})


def test_closed_body_and_bad_combinations():
    with pytest.raises(ValidationError, match="frobnicate"):
        request(frobnicate=1)
    with pytest.raises(ValidationError, match="not both"):
        request(previous_response_id="resp_1", session_id="sess_1")
    with pytest.raises(ValidationError, match="empty"):
        request(input=[])
    with pytest.raises(ValidationError, match="16 pairs"):
        request(metadata={str(i): "v" for i in range(17)})


def test_input_items_become_chat_messages_and_stored_items():
    parsed = parse_input([
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        {"type": "message", "id": "msg_x", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
    ])
    assert parsed.messages[:3] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"},
                                   {"role": "assistant", "content": "ok"}]
    assert [c["id"] for c in parsed.messages[3]["tool_calls"]] == ["c1", "c2"]  # one assistant turn
    assert parsed.messages[4] == {"role": "tool", "tool_call_id": "c1", "content": "1"}
    assert parsed.has_tool_items and parsed.items[2]["id"] == "msg_x"
    assert all(item["id"] for item in parsed.items) and len(parsed.items) == 6


@pytest.mark.parametrize("value, param", [
    ([{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}], "input[0].content[0].type"),
    ([{"type": "reasoning", "summary": []}], "input[0].type"),
    ([{"role": "tool", "content": "x"}], "input[0].role"),
    ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
])
def test_unserved_input_items_name_the_item(value, param):
    with pytest.raises(InvalidField) as caught:
        parse_input(value)
    assert caught.value.param == param


def test_input_items_pages():
    items = [{"id": f"i{k}"} for k in range(5)]
    page = input_items_page(items, limit=2, order="desc", after=None, before=None)
    assert [i["id"] for i in page["data"]] == ["i4", "i3"] and page["has_more"] and page["last_id"] == "i3"
    page = input_items_page(items, limit=20, order="desc", after="i3", before=None)
    assert [i["id"] for i in page["data"]] == ["i2", "i1", "i0"] and not page["has_more"]
    page = input_items_page(items, limit=20, order="asc", after=None, before="i2")
    assert [i["id"] for i in page["data"]] == ["i0", "i1"]
    with pytest.raises(ValueError, match="after"):
        input_items_page(items, limit=2, order="asc", after="nope", before=None)


def token(text: str, finish: str | None = None, n: int = 1) -> dict:
    return {"text": text, "finish_reason": finish, "token_id": 1, "prompt_tokens": 7, "cached_tokens": 0,
            "completion_tokens": n}


def run_stream(items: list[dict], cached: int = 0) -> tuple[list[dict], dict]:
    stream = ResponseStream(skeleton("resp_1", request(), "m"), cached, with_logprobs=False)
    events = stream.start()
    for item in items:
        events += stream.add(item)
    events += stream.finish()
    return events, stream.response


def test_stream_events_in_order_with_sequence_numbers():
    events, response = run_stream([token("Hel"), token("lo", n=2), token("", "stop", 3)], cached=5)
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert response["status"] == "completed" and response["output"][0]["content"][0]["text"] == "Hello"
    assert events[-1]["response"] == response
    assert response["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 5},
                                 "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0},
                                 "total_tokens": 15}
    assert frame(events[0]).startswith("event: response.created\ndata: {")


def test_cut_answer_is_incomplete():
    events, response = run_stream([token("a"), token("", "length", 2)])
    assert events[-1]["type"] == "response.incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


def test_function_calls_are_output_items():
    stream = ResponseStream(skeleton("resp_1", request(), "m"), 0, with_logprobs=False, text_events=False)
    events = stream.start() + stream.add(token("<tool_call>")) + stream.add(token("", "stop", 2))
    events += stream.finish(calls=[{"call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"}], content=None)
    kinds = [e["type"] for e in events]
    assert kinds[2:] == ["response.output_item.added", "response.function_call_arguments.delta",
                         "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert stream.response["output"] == [{"type": "function_call", "id": events[2]["item"]["id"], "call_id": "call_1",
                                          "name": "f", "arguments": "{\"a\":1}", "status": "completed"}]


def parent(tokens: int, uncompressed_from: int) -> Parent:
    return Parent({"id": "resp_1", "read_tokens": tokens, "response": {"conversation": []},
                   "context": {"token_ids": [0] * tokens, "uncompressed_from": uncompressed_from}})


def test_chain_layout_compresses_history_past_the_threshold_newest_turn_whole():
    assert chain_layout(None, 100).uncompressed_from == 0 and not chain_layout(None, 100).recompress
    small = chain_layout(parent(150, 80), 100)
    assert small.uncompressed_from == 80 and not small.recompress  # 70 whole tokens: append
    big = chain_layout(parent(300, 80), 100)
    assert big.uncompressed_from == 300 and big.recompress  # 220 whole tokens: press all before this turn
    session = Parent({"id": "sess_1", "read_tokens": 500, "response": None, "context": {"text": "doc"}})
    assert chain_layout(session, 100).uncompressed_from == 500  # a session's context went through its press


def test_function_tools_convert_to_the_tool_package_and_back():
    from deployments.ingress.responses import function_tools
    from deployments.ingress.tools import ToolError

    weather = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}, "required": ["city"]}, "strict": True, "description": None}
    plan = function_tools.plan([weather], {"type": "function", "name": "get_weather"}, None,
                               [{"role": "user", "content": "hi"}])
    assert plan.choice.mode == "named" and plan.tools[0].name == "get_weather" and plan.guided is not None
    content, calls = function_tools.read_answer(plan, '{"city": "Oslo"}', "resp_1")
    assert content is None and calls == [{"call_id": calls[0]["call_id"], "name": "get_weather",
                                          "arguments": '{"city": "Oslo"}'}]
    assert function_tools.read_answer(plan, '{"city": "Oslo"}', "resp_1") == (content, calls)  # ids: same seed
    with pytest.raises(ToolError) as caught:
        function_tools.plan([{**weather, "name": "bad name"}], None, None, [])
    assert caught.value.param == "tools[0].name"
    with pytest.raises(ToolError) as caught:  # a tool output must answer a call of the turn before
        function_tools.plan([weather], None, None, [{"role": "tool", "tool_call_id": "c9", "content": "x"}])
    assert caught.value.param.startswith("input")
    previous = function_tools.previous_calls({"output": [{"type": "function_call", "call_id": "c9", "name": "get_weather",
                                                          "arguments": "{}"}]})
    function_tools.plan([weather], None, None, previous + [{"role": "tool", "tool_call_id": "c9", "content": "x"}])
