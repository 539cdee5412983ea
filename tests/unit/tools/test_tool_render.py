"""The fallback rendering of tools and tool-calling history into plain chat messages."""

import json

from deployments.ingress.tools import ToolChoice, parse_tools, render_history, tools_block, with_tools
from tests.unit.tools.test_tool_schema import ADD, WEATHER, call

TOOLS = parse_tools([WEATHER, ADD])


def test_the_tools_block_lists_every_tool_and_the_format():
    block = tools_block(TOOLS, ToolChoice("auto"))
    listed = block.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in listed] == ["get_weather", "add"]
    assert '<tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call>' in block
    assert tools_block(TOOLS, ToolChoice("none")) == ""
    assert "at most one function" in tools_block(TOOLS, ToolChoice("auto"), parallel=False)


def test_history_becomes_plain_turns():
    rendered = render_history([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_1"), call("call_2", "add", "{}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "3"}]},
    ])
    assert rendered == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Lisbon"}}'
                                         '</tool_call>\n<tool_call>{"name": "add", "arguments": {}}</tool_call>'},
        {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>\n<tool_response>\n3\n</tool_response>"},
    ]


def test_placement_system_merges_or_inserts():
    inserted = with_tools([{"role": "user", "content": "hi"}], TOOLS, ToolChoice("auto"))
    assert inserted[0]["role"] == "system" and inserted[0]["content"].startswith("# Tools")
    merged = with_tools([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                        TOOLS, ToolChoice("required"))
    assert len(merged) == 2 and merged[0]["content"].startswith("Be brief.\n\n# Tools")


def test_placement_first_user_leaves_the_system_prompt_alone():
    out = with_tools([{"role": "user", "content": "hi"}], TOOLS, ToolChoice("auto"), placement="first_user")
    assert len(out) == 1 and out[0]["role"] == "user"
    assert out[0]["content"].startswith("# Tools") and out[0]["content"].endswith("\n\nhi")
