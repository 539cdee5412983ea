"""Validation of OpenAI chat ``messages`` as OpenAI's API validates them, naming the bad field.

Source: the OpenAI API reference (Chat Completions, ``messages``: the system, developer, user,
assistant, tool and function message objects and their content parts) and vLLM's request
models (``ChatCompletionRequest.messages``: ``ChatCompletionMessageParam``). Shapes are checked
first (HTTP 400, ``param`` like ``messages[0].content``); then shapes that are valid OpenAI but
that a text-only server cannot serve (image/audio/file parts, function messages; tool messages
and assistant ``tool_calls`` outside chat completions) are refused with code
``unsupported_parameter`` - never silently ignored.

``check_messages(value, field) -> list[dict]`` returns the messages unchanged; it raises
``InvalidField`` (a ``ValueError``, so pydantic validators may raise it; deployments.ingress.errors reads
its ``param`` and ``code``).
"""

from __future__ import annotations

from typing import Any, Callable

from kvpool.errors import KVFleetError

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class InvalidField(KVFleetError, ValueError):
    """A request field is missing, of the wrong type or out of range (HTTP 400, ``param`` names it)."""

    def __init__(self, message: str, param: str, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _kind(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _type_error(param: str, expected: str, value: Any) -> InvalidField:
    return InvalidField(f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.", param)


def _require(obj: dict, key: str, param: str) -> Any:
    if key not in obj:
        raise InvalidField(f"Missing required parameter: '{param}.{key}'.", f"{param}.{key}")
    return obj[key]


def _string(value: Any, param: str, *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)


def _choice(value: Any, param: str, allowed: tuple[str, ...]) -> None:
    _string(value, param)
    if value not in allowed:
        listed = ", ".join(f"'{a}'" for a in allowed)
        raise InvalidField(f"Invalid value for '{param}': '{value}'. Supported values are: {listed}.", param)


def _closed(obj: Any, param: str, allowed: set[str]) -> dict:
    if not isinstance(obj, dict):
        raise _type_error(param, "an object", obj)
    for key in obj:
        if key not in allowed:
            raise InvalidField(f"Unrecognized parameter '{param}.{key}': additional properties are not allowed.",
                               f"{param}.{key}")
    return obj


# ---- content parts ------------------------------------------------------------------------------

def _text_part(part: dict, p: str) -> None:
    _closed(part, p, {"type", "text"})
    _string(_require(part, "text", p), f"{p}.text")


def _refusal_part(part: dict, p: str) -> None:
    _closed(part, p, {"type", "refusal"})
    _string(_require(part, "refusal", p), f"{p}.refusal")


def _image_part(part: dict, p: str) -> None:
    _closed(part, p, {"type", "image_url"})
    image = _closed(_require(part, "image_url", p), f"{p}.image_url", {"url", "detail"})
    _string(_require(image, "url", f"{p}.image_url"), f"{p}.image_url.url")
    if "detail" in image:
        _choice(image["detail"], f"{p}.image_url.detail", ("auto", "low", "high"))


def _audio_part(part: dict, p: str) -> None:
    _closed(part, p, {"type", "input_audio"})
    audio = _closed(_require(part, "input_audio", p), f"{p}.input_audio", {"data", "format"})
    _string(_require(audio, "data", f"{p}.input_audio"), f"{p}.input_audio.data")
    _choice(_require(audio, "format", f"{p}.input_audio"), f"{p}.input_audio.format", ("wav", "mp3"))


def _file_part(part: dict, p: str) -> None:
    _closed(part, p, {"type", "file"})
    file = _closed(_require(part, "file", p), f"{p}.file", {"file_data", "file_id", "filename"})
    for key in file:
        _string(file[key], f"{p}.file.{key}")


_PARTS: dict[str, Callable[[dict, str], None]] = {
    "text": _text_part, "refusal": _refusal_part, "image_url": _image_part, "input_audio": _audio_part,
    "file": _file_part}
_PART_TYPES = {  # role -> content part types OpenAI accepts in it
    "system": ("text",), "developer": ("text",), "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"), "tool": ("text",), "function": ()}


def _content(value: Any, p: str, role: str, *, nullable: bool) -> None:
    if isinstance(value, str) or (value is None and nullable):
        return
    types = _PART_TYPES[role]
    if not isinstance(value, list) or not types:
        expected = "a string" + (" or an array of content parts" if types else "")
        raise _type_error(p, expected, value)
    if not value:
        raise InvalidField(f"Invalid '{p}': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.", p)
    for j, part in enumerate(value):
        pj = f"{p}[{j}]"
        if not isinstance(part, dict):
            raise _type_error(pj, "an object", part)
        _choice(_require(part, "type", pj), f"{pj}.type", types)
        _PARTS[part["type"]](part, pj)


# ---- messages -----------------------------------------------------------------------------------

_KEYS = {"system": {"role", "content", "name"}, "developer": {"role", "content", "name"},
         "user": {"role", "content", "name"},
         "assistant": {"role", "content", "name", "refusal", "tool_calls", "function_call", "audio"},
         "tool": {"role", "content", "tool_call_id"}, "function": {"role", "content", "name"}}


def _tool_calls(value: Any, p: str) -> None:
    if not isinstance(value, list):
        raise _type_error(p, "an array", value)
    for k, call in enumerate(value):
        pk = f"{p}[{k}]"
        _closed(call, pk, {"id", "type", "function"})
        _string(_require(call, "id", pk), f"{pk}.id")
        _choice(_require(call, "type", pk), f"{pk}.type", ("function",))
        function = _closed(_require(call, "function", pk), f"{pk}.function", {"name", "arguments"})
        _string(_require(function, "name", f"{pk}.function"), f"{pk}.function.name")
        _string(_require(function, "arguments", f"{pk}.function"), f"{pk}.function.arguments")


def check_message(message: Any, p: str) -> None:
    """Raise InvalidField unless ``message`` is a well-formed OpenAI chat message."""
    if not isinstance(message, dict):
        raise _type_error(p, "an object", message)
    role = _require(message, "role", p)
    _choice(role, f"{p}.role", ROLES)
    _closed(message, p, _KEYS[role])
    if "name" in message:
        _string(message["name"], f"{p}.name")
    if role == "assistant":
        if "tool_calls" in message:
            _tool_calls(message["tool_calls"], f"{p}.tool_calls")
        if "refusal" in message:
            _string(message["refusal"], f"{p}.refusal", nullable=True)
        calls = message.get("tool_calls") or message.get("function_call")
        if not calls:
            _require(message, "content", p)
        _content(message.get("content"), f"{p}.content", role, nullable=True)
        return
    if role == "tool":
        _string(_require(message, "tool_call_id", p), f"{p}.tool_call_id")
    if role == "function":
        _string(_require(message, "name", p), f"{p}.name")
    _content(_require(message, "content", p), f"{p}.content", role, nullable=role == "function")


def unsupported(message: dict, p: str, tools: bool = False) -> InvalidField | None:
    """A well-formed message that this text-only server cannot serve, as an error. ``tools``: tool
    messages and assistant ``tool_calls`` are served (chat completions; deployments/ingress/tools);
    the deprecated ``function`` role and ``function_call`` never are."""
    if message["role"] == "function" or (message["role"] == "tool" and not tools):
        hint = "use 'tool' messages" if tools else "a session's context cannot hold tool-calling turns"
        return InvalidField(f"'{p}.role': {message['role']!r} messages are not supported here ({hint})",
                            f"{p}.role", "unsupported_parameter")
    for key in ("function_call", "audio") if tools else ("tool_calls", "function_call", "audio"):
        if message.get(key):
            return InvalidField(f"'{p}.{key}' is not supported by this server", f"{p}.{key}", "unsupported_parameter")
    content = message.get("content")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if part["type"] not in ("text",):
            return InvalidField(f"'{p}.content[{j}]': {part['type']!r} content parts are not supported; "
                                "this server serves a text-only model", f"{p}.content[{j}].type",
                                "unsupported_parameter")
    return None


def check_messages(value: Any, field: str = "messages", tools: bool = False) -> list[dict]:
    """Validate a ``messages`` array (non-empty, each message well-formed and servable; ``tools``:
    tool-calling turns allowed)."""
    if not isinstance(value, list):
        raise _type_error(field, "an array", value)
    if not value:
        raise InvalidField(f"Invalid '{field}': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.", field)
    for i, message in enumerate(value):
        check_message(message, f"{field}[{i}]")
    for i, message in enumerate(value):
        problem = unsupported(message, f"{field}[{i}]", tools)
        if problem is not None:
            raise problem
    return value
