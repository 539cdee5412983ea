"""Generated text -> OpenAI tool calls, for finished and for partial text alike.

``parse_turn(text, choice, final)`` reads what the constraint of ``choice`` (grammar.py) lets the
model write: the arguments object (``named``), a JSON array of ``{"name", "parameters"}``
(``required``), or text / ``<tool_call>`` lines (``auto``). It works on any prefix of the answer,
and the result only ever grows: a call's ``name`` is set once, complete; its ``arguments`` is the
exact generated text of the arguments object so far (never re-serialised), so the arguments of a
prefix are a prefix of the final ones. Streaming (stream.py) sends the differences; the
non-streamed reply is the same parse of the whole text - both say the same bytes.

``call_id(seed, k)``: ``call_<24 hex>`` from a per-request-and-choice ``seed`` (the caller's, e.g.
a hash of the request) and the call's index, so a streamed and a non-streamed answer to the same
request carry the same ids without either path remembering anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from deployments.ingress.tools.render import CALL_CLOSE, CALL_OPEN
from deployments.ingress.tools.schema import ToolChoice

_WS = " \t\n\r"


class _Malformed(Exception):
    """The text is not in the expected format (only possible without the grammar)."""


@dataclass
class ParsedCall:
    """``name``: None until its JSON string is complete; ``arguments``: JSON text so far."""

    name: str | None = None
    arguments: str = ""
    complete: bool = False


@dataclass
class ParsedTurn:
    """``content``: the text answer (None while undecided or when the answer is calls)."""

    content: str | None = None
    calls: list[ParsedCall] = field(default_factory=list)


def call_id(seed: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()[:24]


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _string_end(text: str, i: int) -> int | None:
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        j += 1
    return None


def value_end(text: str, i: int) -> int | None:
    """End (exclusive) of the JSON value that starts at ``text[i]``; None if the text ends first."""
    if i >= len(text):
        return None
    if text[i] == '"':
        return _string_end(text, i)
    if text[i] in "{[":
        depth, j = 0, i
        while j < len(text):
            if text[j] == '"':
                end = _string_end(text, j)
                if end is None:
                    return None
                j = end
                continue
            if text[j] in "{[":
                depth += 1
            elif text[j] in "}]":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return None
    j = i
    while j < len(text) and text[j] not in ",}]" + _WS:
        j += 1
    return j if j < len(text) else None  # a number at the end may go on


def _expect(text: str, i: int, token: str) -> int | None:
    """Index after ``token`` at ``i``; None if the text ends inside it; _Malformed otherwise."""
    rest = text[i:i + len(token)]
    if rest == token:
        return i + len(token)
    if token.startswith(rest):
        return None
    raise _Malformed(f"expected {token!r} at {i}")


def _call_object(text: str, i: int, arguments_key: str, call: ParsedCall) -> int | None:
    """Fill ``call`` from the object at ``i``; its end, or None if the text ends first."""
    i = _expect(text, _skip(text, i), "{")
    while i is not None:
        i = _skip(text, i)
        if i >= len(text):
            return None
        if text[i] == "}":
            call.complete = True
            return i + 1
        if text[i] == ",":
            i += 1
            continue
        key_end = _string_end(text, i)
        if key_end is None:
            return None
        key = json.loads(text[i:key_end])
        i = _expect(text, _skip(text, key_end), ":")
        if i is None:
            return None
        i = _skip(text, i)
        end = value_end(text, i)
        if key == "name" and end is not None:
            call.name = json.loads(text[i:end])
        if key == arguments_key:
            call.arguments = text[i:len(text) if end is None else end]
        i = end
    return None


def _named(text: str, name: str) -> ParsedTurn:
    start = _skip(text, 0)
    end = value_end(text, start)
    return ParsedTurn(None, [ParsedCall(name, text[start:len(text) if end is None else end], end is not None)])


def _array(text: str) -> ParsedTurn:
    turn = ParsedTurn()
    i = _expect(text, _skip(text, 0), "[")
    while i is not None:
        i = _skip(text, i)
        if i >= len(text) or text[i] == "]":
            break
        if text[i] == ",":
            i += 1
            continue
        turn.calls.append(ParsedCall())
        i = _call_object(text, i, "parameters", turn.calls[-1])
    return turn


def _tagged(text: str) -> ParsedTurn:
    turn = ParsedTurn()
    i: int | None = 0
    while i is not None and i < len(text):
        if text[i] in _WS:
            i += 1
            continue
        i = _expect(text, i, CALL_OPEN)
        if i is None:
            break
        turn.calls.append(ParsedCall())
        i = _call_object(text, i, "arguments", turn.calls[-1])
        if i is not None:
            i = _expect(text, _skip(text, i), CALL_CLOSE)
    return turn


def parse_turn(text: str, choice: ToolChoice, final: bool = True) -> ParsedTurn:
    """What ``text`` (the whole answer if ``final``, else a prefix of it) says. Text that is not in
    the format of ``choice`` (only possible without the grammar) is returned as ``content``."""
    try:
        if choice.mode == "named":
            return _named(text, choice.name or "")
        if choice.mode == "required":
            return _array(text)
        if choice.mode == "auto" and text.startswith(CALL_OPEN):
            return _tagged(text)
        if choice.mode == "auto" and CALL_OPEN.startswith(text) and not final:
            return ParsedTurn()  # may still become a call: undecided
    except (_Malformed, json.JSONDecodeError):
        pass
    return ParsedTurn(content=text)


def tool_calls(turn: ParsedTurn, seed: str) -> list[dict[str, Any]]:
    """OpenAI ``message.tool_calls`` of a parsed answer (calls whose name never completed are left out)."""
    return [{"id": call_id(seed, k), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for k, c in enumerate(turn.calls) if c.name is not None]


def finish_reason(turn: ParsedTurn, generated: str) -> str:
    """``tool_calls`` when the answer ended normally in calls, else the generation's own reason."""
    if generated == "stop" and turn.calls and all(c.complete for c in turn.calls):
        return "tool_calls"
    return generated
