"""Tools, ``tool_choice`` and tool-calling history, checked as OpenAI's API checks them.

Source: the OpenAI API reference (Chat Completions: ``tools``, ``tool_choice``,
``parallel_tool_calls``, assistant ``tool_calls`` and ``tool`` messages) and vLLM's request
model. Everything here takes plain JSON values (dicts, lists, strings) and returns small frozen
dataclasses, so any API (chat completions, responses) can use it.

Errors are ``ToolError`` (a ``ValueError``; HTTP 400) with ``param`` naming the field, e.g.
``tools[1].function.name`` or ``messages[3].tool_call_id``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from kvpool.errors import KVFleetError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function names
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
ChoiceMode = Literal["none", "auto", "required", "named"]


class ToolError(KVFleetError, ValueError):
    """A bad ``tools`` / ``tool_choice`` / tool-calling history (HTTP 400; ``param`` names the field)."""

    def __init__(self, message: str, param: str, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass(frozen=True)
class FunctionTool:
    """One function tool. ``parameters``: its JSON schema (``EMPTY_PARAMETERS`` when omitted);
    ``strict``: OpenAI's flag, kept for the reply (kvfleet constrains every call to the schema)."""

    name: str
    parameters: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class ToolChoice:
    """``mode``: ``none`` (never call), ``auto`` (text or calls), ``required`` (at least one call),
    ``named`` (exactly one call of ``name``)."""

    mode: ChoiceMode
    name: str | None = None


def _kind(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _expect(value: Any, kind: type, param: str, expected: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ToolError(f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.", param)
    return value


def _closed(obj: dict, param: str, allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise ToolError(f"Unrecognized parameter '{param}.{key}': additional properties are not allowed.",
                            f"{param}.{key}")


def parse_function(function: Any, param: str) -> FunctionTool:
    """A function definition ``{"name", "description"?, "parameters"?, "strict"?}`` (the Chat
    Completions ``tools[i].function`` object, or a Responses function tool without its ``type``)."""
    _expect(function, dict, param, "an object")
    _closed(function, param, {"name", "description", "parameters", "strict"})
    if "name" not in function:
        raise ToolError(f"Missing required parameter: '{param}.name'.", f"{param}.name")
    name = _expect(function["name"], str, f"{param}.name", "a string")
    if not NAME_PATTERN.match(name):
        raise ToolError(f"Invalid '{param}.name': {name!r} must be 1-64 characters of a-z, A-Z, 0-9, _ or -.",
                        f"{param}.name")
    description = function.get("description")
    if description is not None:
        _expect(description, str, f"{param}.description", "a string")
    parameters = function.get("parameters")
    parameters = EMPTY_PARAMETERS if parameters is None else _expect(parameters, dict, f"{param}.parameters",
                                                                      "an object (a JSON schema)")
    strict = function.get("strict")
    if strict is not None:
        _expect(strict, bool, f"{param}.strict", "a boolean")
    return FunctionTool(name, parameters, description, strict)


def parse_tools(value: Any, param: str = "tools") -> tuple[FunctionTool, ...]:
    """Chat Completions ``tools``: ``[{"type": "function", "function": {...}}]``; names unique."""
    if value is None:
        return ()
    _expect(value, list, param, "an array")
    tools = []
    for i, entry in enumerate(value):
        p = f"{param}[{i}]"
        _expect(entry, dict, p, "an object")
        if entry.get("type") != "function":
            raise ToolError(f"Invalid value for '{p}.type': {entry.get('type')!r}. Supported values are: 'function'.",
                            f"{p}.type", "unsupported_parameter")
        _closed(entry, p, {"type", "function"})
        if "function" not in entry:
            raise ToolError(f"Missing required parameter: '{p}.function'.", f"{p}.function")
        tools.append(parse_function(entry["function"], f"{p}.function"))
    names = [t.name for t in tools]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ToolError(f"Invalid '{param}': the function name {name!r} is given twice.",
                            f"{param}[{i}].function.name")
    return tuple(tools)


def parse_tool_choice(value: Any, tools: tuple[FunctionTool, ...], param: str = "tool_choice") -> ToolChoice:
    """``tool_choice``: ``"none" | "auto" | "required" | {"type": "function", "function": {"name"}}``.
    Default (None): ``auto`` with tools, ``none`` without (OpenAI). A choice other than ``none``
    needs tools; a named function must be one of them."""
    if value is None:
        return ToolChoice("auto" if tools else "none")
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise ToolError(f"Invalid value for '{param}': {value!r}. Supported values are: 'none', 'auto', "
                            "'required' or a named function object.", param)
        mode: ChoiceMode = value  # type: ignore[assignment]
        if mode != "none" and not tools:
            raise ToolError(f"Invalid value for '{param}': {value!r} is only allowed when 'tools' are specified.",
                            param)
        return ToolChoice(mode)
    _expect(value, dict, param, "a string or an object")
    if value.get("type") != "function":
        raise ToolError(f"Invalid value for '{param}.type': {value.get('type')!r}. Supported values are: "
                        "'function'.", f"{param}.type", "unsupported_parameter")
    _closed(value, param, {"type", "function"})
    function = _expect(value.get("function"), dict, f"{param}.function", "an object")
    _closed(function, f"{param}.function", {"name"})
    name = _expect(function.get("name"), str, f"{param}.function.name", "a string")
    if name not in {t.name for t in tools}:
        listed = ", ".join(repr(t.name) for t in tools) or "none"
        raise ToolError(f"Invalid '{param}.function.name': {name!r} is not one of the given tools ({listed}).",
                        f"{param}.function.name")
    return ToolChoice("named", name)


def check_history(messages: list[dict[str, Any]], param: str = "messages") -> None:
    """Tool-calling history: every assistant ``tool_calls[k].function.arguments`` is JSON text, call
    ids are unique, and every ``tool`` message answers a call of the assistant message before it
    (only other tool messages between them), by ``tool_call_id``. Raises ToolError."""
    seen: set[str] = set()
    open_calls: set[str] | None = None  # ids the next tool message may answer; None: not after a call
    for i, message in enumerate(messages):
        p = f"{param}[{i}]"
        role = message.get("role")
        if role == "tool":
            answered = message.get("tool_call_id")
            if open_calls is None:
                raise ToolError(f"Invalid '{p}': a 'tool' message must follow an assistant message with "
                                "'tool_calls' (or another tool message answering it).", f"{p}.role")
            if answered not in open_calls:
                raise ToolError(f"Invalid '{p}.tool_call_id': {answered!r} is not the id of a tool call of the "
                                f"preceding assistant message (ids: {sorted(open_calls)}).", f"{p}.tool_call_id")
            continue
        open_calls = None
        for k, call in enumerate(message.get("tool_calls") or () if role == "assistant" else ()):
            pk = f"{p}.tool_calls[{k}]"
            if call["id"] in seen:
                raise ToolError(f"Invalid '{pk}.id': the tool call id {call['id']!r} is used twice.", f"{pk}.id")
            seen.add(call["id"])
            try:
                json.loads(call["function"]["arguments"])
            except json.JSONDecodeError as exc:
                raise ToolError(f"Invalid '{pk}.function.arguments': not JSON text ({exc}).",
                                f"{pk}.function.arguments") from exc
            open_calls = (open_calls or set()) | {call["id"]}
