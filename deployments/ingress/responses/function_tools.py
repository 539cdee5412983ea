"""Responses API function tools, on the tool-calling package (deployments/ingress/tools).

The Responses API writes a function tool flat - ``{"type": "function", "name", "description",
"parameters", "strict"}`` - and a named choice as ``{"type": "function", "name"}``; Chat
Completions nests both under ``function`` (vLLM converts the same way before rendering). This
module converts them, plans the request with ``plan_tools`` (checked tools and history, the
tool_choice's grammar, the rendered prompt) and reads the answer back as ``function_call`` output
items with ``parse_turn``. Errors are the package's ``ToolError`` with ``param`` renamed to the
Responses field (``tools[1].parameters``, ``tool_choice.name``, ``input``).
"""

from __future__ import annotations

from typing import Any

from deployments.ingress.responses.items import chat_tool_call
from deployments.ingress.tools import ToolError, ToolPlan, call_id, parse_turn, plan_tools, render_history, tools_block

_FUNCTION_KEYS = ("name", "description", "parameters", "strict")


def _param(param: str) -> str:
    """A chat-shaped param of the package's errors -> the Responses field it came from."""
    if param.startswith("messages"):
        return "input"
    return param.replace(".function.", ".").replace(".function", "")


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Flat Responses function tools -> Chat Completions ``tools``; ToolError naming ``tools[i].<key>``
    for a key a function tool does not have."""
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        extra = set(tool) - {"type", *_FUNCTION_KEYS}
        if extra:
            key = sorted(extra)[0]
            raise ToolError(f"Unrecognized parameter 'tools[{i}].{key}': a function tool has type, name, description, "
                            "parameters and strict.", f"tools[{i}].function.{key}")
        out.append({"type": "function", "function": {k: tool[k] for k in _FUNCTION_KEYS if tool.get(k) is not None}})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    """``{"type": "function", "name"}`` -> ``{"type": "function", "function": {"name"}}``; other values as given."""
    if isinstance(choice, dict) and choice.get("type") == "function" and "function" not in choice:
        extra = set(choice) - {"type", "name"}
        if extra:
            raise ToolError(f"Unrecognized parameter 'tool_choice.{sorted(extra)[0]}'.", "tool_choice")
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def plan(tools: list[dict[str, Any]] | None, tool_choice: Any, parallel: bool | None,
         history: list[dict[str, Any]]) -> ToolPlan:
    """The tool plan of a Responses request; ``history``: the messages the tool history check reads
    (a continuation's previous calls first). Raises ToolError with the Responses param."""
    try:
        return plan_tools(chat_tools(tools), chat_tool_choice(tool_choice), parallel, history)
    except ToolError as exc:
        exc.param = _param(exc.param)
        raise


def block(tool_plan: ToolPlan) -> str:
    """The tools text a chain's cache holds for this plan ("" for none)."""
    return tools_block(tool_plan.tools, tool_plan.choice, tool_plan.parallel)


def renders_block(tool_plan: ToolPlan, chain_block: str) -> bool:
    """Whether a turn continuing a chain whose cache holds ``chain_block`` must render its tools
    block: only for tools the chain does not show yet. The per-turn options - ``tool_choice``
    (other than ``none``, which shows nothing) and ``parallel_tool_calls`` - are this turn's
    decoding grammar; they never re-render a block the chain already holds (its wording is the
    turn's that first showed the tools; re-rendering it re-read ~200 tokens per turn)."""
    if not block(tool_plan):
        return False
    return not any(tools_block(tool_plan.tools, tool_plan.choice, parallel) == chain_block for parallel in (True, False))


def held_block(tool_plan: ToolPlan, chain_block: str) -> str:
    """The tools block the cache of a turn continuing ``chain_block``'s chain holds ("" for none)."""
    return block(tool_plan) if renders_block(tool_plan, chain_block) else chain_block


def answer_turn(content: str | None, calls: list[dict[str, Any]]) -> str:
    """The assistant turn a chain's cache holds for an answer read as ``(content, calls)``
    (``read_answer``): its output items rendered as history (render.py) - exactly what a client
    re-sending those items (``message`` / ``function_call``) renders, whatever form the
    tool_choice's grammar generated them in (``required``: a JSON array, ``named``: the arguments)."""
    tool_calls = [chat_tool_call(c) for c in calls]
    message = {"role": "assistant", "content": content, **({"tool_calls": tool_calls} if tool_calls else {})}
    return render_history([message])[0]["content"] or ""


def previous_calls(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored response's function calls as one assistant chat message (for the history check), or []."""
    calls = [chat_tool_call(item) for item in response.get("output", []) if item.get("type") == "function_call"]
    return [{"role": "assistant", "content": None, "tool_calls": calls}] if calls else []


def read_answer(tool_plan: ToolPlan, text: str, seed: str) -> tuple[str | None, list[dict[str, Any]]]:
    """``(content, calls)`` of a finished answer: calls ``{"call_id", "name", "arguments"}`` with ids
    ``call_id(seed, k)``; content the text around them (None when the answer is calls only)."""
    turn = parse_turn(text, tool_plan.choice, final=True)
    # a call cut off by max_output_tokens (arguments not complete JSON) is left out: sent back as
    # history it could not be parsed (the response says why: status incomplete)
    calls = [{"call_id": call_id(seed, k), "name": c.name, "arguments": c.arguments}
             for k, c in enumerate(turn.calls) if c.name is not None and c.complete]
    return turn.content, calls
