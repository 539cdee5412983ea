"""The fallback rendering of tools and tool-calling history into plain chat messages, for chat
templates without tools support (the embedded SmolLM2's has none; vLLM would drop the tools).

The format is Hermes / Qwen2.5's (the one vLLM's ``hermes`` parser reads), on one line per call:

- the tools block (``tools_block``) lists each tool as its OpenAI JSON inside ``<tools></tools>``
  and asks for calls as ``<tool_call>{"name": <name>, "arguments": <JSON object>}</tool_call>``,
  one per line;
- an assistant message with ``tool_calls`` becomes assistant text: its content (if any), then one
  such ``<tool_call>`` line per call, the arguments text as the client sent it;
- ``tool`` messages become one user message of ``<tool_response>...</tool_response>`` blocks
  (consecutive tool messages are merged into it, in order).

``with_tools(messages, tools, choice, placement)`` returns messages with only ``role`` and
``content`` (string) that any chat template renders. ``placement="system"`` puts the tools block
in the system message (merged after the client's own system text, or a new first message);
``"first_user"`` puts it before the text of the first user message (a stored session's system
prompt cannot change, so a question on a session carries its tools there).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from deployments.ingress.tools.schema import FunctionTool, ToolChoice

Placement = Literal["system", "first_user"]
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


def tool_json(tool: FunctionTool) -> dict[str, Any]:
    """The OpenAI ``tools[i]`` object of ``tool`` (what the model reads)."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def tools_block(tools: tuple[FunctionTool, ...], choice: ToolChoice, parallel: bool = True) -> str:
    """The system text describing ``tools`` and the call format ("" for ``tool_choice: none``)."""
    if choice.mode == "none" or not tools:
        return ""
    listed = "\n".join(json.dumps(tool_json(t), ensure_ascii=False) for t in tools)
    how_many = "one or more functions" if parallel else "at most one function"
    return ("# Tools\n\n"
            f"You may call {how_many} to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{listed}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags, one call per line:\n"
            f'{CALL_OPEN}{{"name": <function-name>, "arguments": <args-json-object>}}{CALL_CLOSE}')


def render_call(name: str, arguments: str) -> str:
    """One call in the fallback format; ``arguments`` is JSON text, kept as given."""
    return f'{CALL_OPEN}{{"name": {json.dumps(name)}, "arguments": {arguments.strip()}}}{CALL_CLOSE}'


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)  # text parts (checked upstream)


def render_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with assistant ``tool_calls`` and ``tool`` messages rendered as plain text turns;
    other messages are copied (without ``name``, which templates ignore)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            block = f"<tool_response>\n{_text(message.get('content'))}\n</tool_response>"
            if out and out[-1].get("_tool_responses"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_responses": True})
            continue
        if role == "assistant" and message.get("tool_calls"):
            calls = [render_call(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]
            text = _text(message.get("content"))
            out.append({"role": "assistant", "content": "\n".join(([text] if text else []) + calls)})
            continue
        out.append({"role": role, "content": message.get("content")})
    for message in out:
        message.pop("_tool_responses", None)
    return out


def with_tools(messages: list[dict[str, Any]], tools: tuple[FunctionTool, ...], choice: ToolChoice,
               parallel: bool = True, placement: Placement = "system") -> list[dict[str, Any]]:
    """Plain ``{role, content}`` messages: the history rendered, the tools block placed."""
    out = render_history(messages)
    block = tools_block(tools, choice, parallel)
    if not block:
        return out
    if placement == "system":
        if out and out[0]["role"] in ("system", "developer"):
            out[0] = {"role": out[0]["role"], "content": f"{_text(out[0]['content'])}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
        return out
    first_user = next((i for i, m in enumerate(out) if m["role"] == "user"), None)
    if first_user is None:
        out.insert(0, {"role": "user", "content": block})
    else:
        out[first_user] = {"role": "user", "content": f"{block}\n\n{_text(out[first_user]['content'])}"}
    return out
