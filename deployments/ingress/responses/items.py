"""Responses API input items -> chat messages, and the items kept for ``input_items``.

``input`` is a string (one user message) or a list of items (openai-python
``types/responses/response_input_param.py``):

- a message: ``role`` user | system | developer | assistant, ``content`` a string or parts
  (``input_text``; ``output_text`` / ``refusal`` in assistant history), ``type: "message"``
  optional, ``id`` / ``status`` optional;
- ``function_call`` (``call_id``, ``name``, ``arguments``) and ``function_call_output``
  (``call_id``, ``output``): function tools (deployments/ingress/tools/).

Anything else (images, files, reasoning, item references, built-in tool items) is a 400 naming
``input[i]...`` and what to send instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from deployments.ingress.chat.messages import InvalidField

_ROLES = {"user", "system", "developer", "assistant"}
_TEXT_PARTS = {"input_text", "output_text", "text"}


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class ParsedInput:
    """``messages``: chat messages (``role``, string ``content``; tool calls as chat's
    ``tool_calls`` / ``tool`` messages); ``items``: the input items as stored for
    ``GET /v1/responses/{id}/input_items`` (each with an ``id``)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_tool_items(self) -> bool:
        return any(m.get("role") == "tool" or m.get("tool_calls") for m in self.messages)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidField(f"{where} must be a string or a list of content parts", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "refusal":
            texts.append(str(part.get("refusal", "")))
            continue
        if kind not in _TEXT_PARTS:
            raise InvalidField(f"content part type {kind!r} is not served (this model reads text only); "
                               "send input_text parts", f"{where}[{j}].type")
        if not isinstance(part.get("text"), str):
            raise InvalidField("a text part needs a string text", f"{where}[{j}].text")
        texts.append(part["text"])
    return "".join(texts)


def _message(item: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    role = item.get("role")
    if role not in _ROLES:
        raise InvalidField(f"role must be one of {sorted(_ROLES)}", f"{where}.role")
    text = _text(item.get("content"), f"{where}.content")
    message = {"role": "system" if role == "developer" else role, "content": text}
    kind = "output_text" if role == "assistant" else "input_text"
    stored = {"type": "message", "id": item.get("id") or new_item_id("msg"), "role": role,
              "status": item.get("status") or "completed",
              "content": [{"type": kind, "text": text, **({"annotations": []} if role == "assistant" else {})}]}
    return message, stored


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise InvalidField(f"a function_call item needs a string {key}", f"{where}.{key}")
    return {"type": "function_call", "id": item.get("id") or new_item_id("fc"), "call_id": item["call_id"],
            "name": item["name"], "arguments": item["arguments"], "status": item.get("status") or "completed"}


def _function_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(item.get("call_id"), str):
        raise InvalidField("a function_call_output item needs a string call_id", f"{where}.call_id")
    output = item.get("output")
    text = output if isinstance(output, str) else _text(output, f"{where}.output")
    return {"type": "function_call_output", "id": item.get("id") or new_item_id("fco"), "call_id": item["call_id"],
            "output": text, "status": item.get("status") or "completed"}


def chat_tool_call(item: dict[str, Any]) -> dict[str, Any]:
    """A ``function_call`` item (``call_id``, ``name``, ``arguments``) as a Chat Completions tool call
    ``{"id", "type": "function", "function": {"name", "arguments"}}`` (how history renders it)."""
    return {"id": item["call_id"], "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]}}


def parse_input(value: str | list[dict[str, Any]]) -> ParsedInput:
    """Chat messages + stored items for ``input``; raises InvalidField (400 naming ``input[i]``)."""
    parsed = ParsedInput()
    if isinstance(value, str):
        message, stored = _message({"role": "user", "content": value}, "input")
        parsed.messages.append(message)
        parsed.items.append(stored)
        return parsed
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidField("each input item must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            message, stored = _message(item, where)
            parsed.messages.append(message)
        elif kind == "function_call":
            stored = _function_call(item, where)
            call = chat_tool_call(stored)
            last = parsed.messages[-1] if parsed.messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)  # parallel calls are separate items, one assistant turn
            else:
                parsed.messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            stored = _function_output(item, where)
            parsed.messages.append({"role": "tool", "tool_call_id": stored["call_id"], "content": stored["output"]})
        else:
            raise InvalidField(f"input item type {kind!r} is not served; send message, function_call and "
                               "function_call_output items", f"{where}.type")
        parsed.items.append(stored)
    return parsed
