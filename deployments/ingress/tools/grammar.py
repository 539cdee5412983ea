"""The decoding constraint of each ``tool_choice``, as a ``GuidedSpec`` the engine's llguidance
grammar compiler runs (deployments/engine/sampling/grammar.py) - per row, inside the batched
decode step like any structured output.

- ``named``: vLLM's approach - a JSON schema, the tool's ``parameters``; the whole answer is the
  arguments object.
- ``required``: vLLM's approach - a JSON array (``minItems`` 1; ``maxItems`` 1 without parallel
  calls) of ``{"name": <tool name>, "parameters": <that tool's schema>}``, one-of over the tools,
  each tool's ``$defs`` merged at the root.
- ``auto``: a Lark grammar ``start: calls | TEXT``: either text that never contains
  ``<tool_call>``, or only well-formed calls in the fallback format (render.py)
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` separated by newlines (one call
  without parallel calls), the JSON checked by llguidance's ``%json`` against the same one-of
  schema (key ``arguments``). So ``auto`` is text or valid calls, never a broken call.
- ``none``: no constraint (the tools are not shown and nothing is parsed).

Objects that declare ``properties`` without ``additionalProperties`` are closed (``closed``).

``check_compiles(tools)`` compiles each tool's schema and raises ``ToolError`` (code
``unsupported_schema``) naming ``tools[i].function.parameters`` and what llguidance cannot do.
"""

from __future__ import annotations

import json
from typing import Any

from deployments.engine.sampling import GuidedSpec
from deployments.engine.sampling.grammar import GrammarError, grammar_of
from deployments.ingress.tools.render import CALL_CLOSE, CALL_OPEN
from deployments.ingress.tools.schema import FunctionTool, ToolChoice, ToolError

_TEXT = "/(?s:.*)/ & ~/(?s:.*)<tool_call>(?s:.*)/"  # any text without the call tag (llguidance's & and ~)


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that declares ``properties``
    and says nothing about extra ones (pydantic's default output): a call's arguments are the declared
    parameters only (OpenAI's strict mode rule) - otherwise a small model may add keys until
    ``max_tokens`` cuts the call."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("enum", "const", "default", "examples") else closed(v)) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: closed(v) for k, v in schema["properties"].items()}
        out.setdefault("additionalProperties", False)
    return out


def _json_spec(schema: dict[str, Any]) -> GuidedSpec:
    return GuidedSpec(kind="json_schema", spec=json.dumps(closed(schema)))


def check_compiles(tools: tuple[FunctionTool, ...], param: str = "tools") -> None:
    """Raise ToolError unless every tool's ``parameters`` schema compiles (llguidance, cached)."""
    for i, tool in enumerate(tools):
        try:
            grammar_of(_json_spec(tool.parameters))
        except GrammarError as exc:
            raise ToolError(f"tool {tool.name!r}: {exc}", f"{param}[{i}].function.parameters",
                            "unsupported_schema") from exc


def call_schema(tools: tuple[FunctionTool, ...], arguments_key: str) -> dict[str, Any]:
    """One call as JSON: ``{"name": <one of the tools>, <arguments_key>: <its parameters>}``; the
    tools' ``$defs`` move to the root (a name two tools define differently is a ToolError)."""
    defs: dict[str, Any] = {}
    options = []
    for tool in tools:
        parameters = dict(tool.parameters)
        for name, definition in (parameters.pop("$defs", None) or {}).items():
            if defs.setdefault(name, definition) != definition:
                raise ToolError(f"tools define '$defs/{name}' differently; rename one of them", "tools",
                                "unsupported_schema")
        options.append({"type": "object", "properties": {"name": {"const": tool.name}, arguments_key: parameters},
                        "required": ["name", arguments_key], "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, "$defs": defs} if defs else schema


def _required(tools: tuple[FunctionTool, ...], parallel: bool) -> dict[str, Any]:
    item = call_schema(tools, "parameters")
    defs = item.pop("$defs", None)
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": item}
    if not parallel:
        schema["maxItems"] = 1
    return {**schema, "$defs": defs} if defs else schema


def _auto(tools: tuple[FunctionTool, ...], parallel: bool) -> str:
    body = json.dumps(closed(call_schema(tools, "arguments")))
    calls = 'call ("\\n" call)*' if parallel else "call"
    return (f"start: calls | TEXT\nTEXT: {_TEXT}\ncalls: {calls}\n"
            f"call: {json.dumps(CALL_OPEN)} call_json {json.dumps(CALL_CLOSE)}\ncall_json: %json {body}\n")


def guided_spec(tools: tuple[FunctionTool, ...], choice: ToolChoice, parallel: bool = True) -> GuidedSpec | None:
    """The constraint for ``choice`` over ``tools`` (None for ``none``). Raises ToolError when the
    combined grammar does not compile (param ``tools``)."""
    if choice.mode == "none":
        return None
    if choice.mode == "named":
        tool = next(t for t in tools if t.name == choice.name)
        spec = _json_spec(tool.parameters)
    elif choice.mode == "required":
        spec = _json_spec(_required(tools, parallel))
    else:
        spec = GuidedSpec(kind="grammar", spec=_auto(tools, parallel))
    try:
        grammar_of(spec)
    except GrammarError as exc:
        raise ToolError(f"the tools cannot be combined into one grammar: {exc}", "tools", "unsupported_schema") from exc
    return spec
