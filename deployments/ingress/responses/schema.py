"""Request body of ``POST /v1/responses`` (closed: an unknown field is a 400 naming it).

Every field of OpenAI's ``CreateResponse`` is declared. The ones a serving system can honour are
served (docs/responses.md lists them); the others are accepted only at their "off" value and
otherwise refused by ``ResponseCreateRequest.unserved`` with a 400 naming the field - never
silently ignored. Source: openai-python ``types/responses/response_create_params.py`` and the
design note ``responses-api.md``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deployments.common.schema_base import StrictModel
from deployments.ingress.chat.messages import InvalidField

_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVED_INCLUDE = {"message.output_text.logprobs"}


class TextConfig(StrictModel):
    """``text``: ``format`` is ``{"type": "text"}`` | ``{"type": "json_object"}`` |
    ``{"type": "json_schema", "name", "schema", "strict"?, "description"?}`` (flat, unlike chat)."""

    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None

    @field_validator("format")
    @classmethod
    def _format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("type")
        if kind in ("text", "json_object"):
            extra = set(value) - {"type"}
            if extra:
                raise InvalidField(f"text.format of type {kind!r} takes no {sorted(extra)}", "text.format")
            return value
        if kind != "json_schema":
            raise InvalidField("text.format.type must be 'text', 'json_object' or 'json_schema'", "text.format.type")
        extra = set(value) - {"type", "name", "schema", "strict", "description"}
        if extra:
            raise InvalidField(f"unsupported field(s) {sorted(extra)} in text.format", "text.format")
        if not isinstance(value.get("name"), str) or not _SCHEMA_NAME.match(value["name"]):
            raise InvalidField("text.format.name must be 1-64 characters of a-z, A-Z, 0-9, _ or -",
                               "text.format.name")
        if not isinstance(value.get("schema"), dict):
            raise InvalidField("text.format.schema must be a JSON schema object", "text.format.schema")
        return value

    def response_format(self) -> dict[str, Any] | None:
        """The same constraint as Chat Completions' ``response_format`` (the structured-output path)."""
        fmt = self.format
        if fmt is None or fmt["type"] == "text":
            return None
        if fmt["type"] == "json_object":
            return {"type": "json_object"}
        inner = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": inner}


class Reasoning(StrictModel):
    effort: str | None = None
    summary: str | None = None
    generate_summary: str | None = None


class ResponseCreateRequest(StrictModel):
    """Ranges from the OpenAI API reference. ``session_id`` is kvfleet's extension: the stored
    session (``POST /v1/sessions``) this conversation starts on."""

    model: str
    input: str | list[dict[str, Any]] = Field(default="")
    instructions: str | None = None
    previous_response_id: str | None = None
    session_id: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=512)
    safety_identifier: str | None = Field(default=None, max_length=512)
    prompt_cache_key: str | None = Field(default=None, max_length=1024)
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: Reasoning | None = None
    service_tier: str | None = None
    # CreateResponse fields a serving system cannot honour: refused unless off (``unserved``)
    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    max_tool_calls: int | None = None
    prompt_cache_retention: str | None = None
    context_management: Any = None
    moderation: Any = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > 16:
            raise InvalidField("metadata holds at most 16 pairs", "metadata")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise InvalidField(f"metadata[{key[:64]!r}]: keys are at most 64 characters, values 512",
                                   "metadata")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ResponseCreateRequest":
        if self.input == "" or self.input == []:
            raise InvalidField("input must not be empty", "input")
        if self.previous_response_id and self.session_id:
            raise InvalidField("give previous_response_id or session_id, not both (a chain started on a session "
                               "already continues from it)", "session_id")
        if self.stream_options is not None and not self.stream:
            raise InvalidField("stream_options is only allowed when stream is true", "stream_options")
        return self

    @property
    def stores(self) -> bool:
        return self.store is not False

    @property
    def streams(self) -> bool:
        return bool(self.stream)

    def logprobs(self) -> bool:
        return "message.output_text.logprobs" in (self.include or [])

    def unserved(self) -> tuple[str, str] | None:
        """``(message, param)`` for the first field set to something kvfleet does not serve, else None."""
        checks: list[tuple[bool, str, str]] = [
            (bool(self.background), "background responses are not served; send the request without background",
             "background"),
            (self.conversation is not None, "the Conversations API is not served; chain turns with "
             "previous_response_id instead", "conversation"),
            (self.prompt is not None, "stored prompt templates (prompt) are not served; send instructions and input",
             "prompt"),
            (self.max_tool_calls is not None, "max_tool_calls applies to built-in tools, which are not served",
             "max_tool_calls"),
            (self.prompt_cache_retention is not None, "prompt_cache_retention is not served: the conversation cache "
             "lives as long as the stored response (docs/responses.md)", "prompt_cache_retention"),
            (self.context_management is not None, "context_management is not served", "context_management"),
            (self.moderation is not None, "moderation is not served", "moderation"),
            (self.truncation == "auto", "truncation 'auto' is not served: an input longer than the context is a 413",
             "truncation"),
            (self.reasoning is not None and self.reasoning.effort not in (None, "none"),
             "this model has no reasoning effort to set; leave reasoning.effort unset", "reasoning.effort"),
            (self.reasoning is not None and bool(self.reasoning.summary or self.reasoning.generate_summary),
             "this model produces no reasoning summary; leave reasoning.summary unset", "reasoning.summary"),
            (self.service_tier not in (None, "auto", "default"), "service_tier must be 'auto' or 'default' here",
             "service_tier"),
            (self.text is not None and self.text.verbosity not in (None, "medium"),
             "text.verbosity is not served; leave it unset", "text.verbosity"),
        ]
        for failed, message, param in checks:
            if failed:
                return message, param
        for value in self.include or []:
            if value not in SERVED_INCLUDE:
                return (f"include value {value!r} is not served; served: {sorted(SERVED_INCLUDE)}", "include")
        if self.top_logprobs and not self.logprobs():
            return "top_logprobs needs include ['message.output_text.logprobs']", "top_logprobs"
        for i, tool in enumerate(self.tools or []):
            if tool.get("type") != "function":
                return (f"tool type {tool.get('type')!r} is not served (built-in tools such as web search run on "
                        "OpenAI's side); only function tools", f"tools[{i}].type")
        return None
