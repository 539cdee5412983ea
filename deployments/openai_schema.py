"""Request bodies of the OpenAI-compatible and sessions APIs (closed: unknown fields are a 400).

Fields vLLM's server accepts are either supported or rejected with a clear message by
``ChatCompletionRequest.check_supported`` - never silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.chat_messages import InvalidField, check_messages
from kvpool.press_spec import PressSpec


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Strict(_Closed):
    """Types as OpenAI checks them: no string for a number, no 1 for true (pydantic's lax mode would)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ChatCompletionRequest(_Strict):
    """Value ranges from the OpenAI API reference (Chat Completions) and vLLM's request model;
    ``messages`` are checked by deployments.chat_messages (400 with ``param`` naming the field)."""

    model: str
    messages: list[dict[str, Any]]
    session_id: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    # vLLM extras; checked and translated by deployments/generation_controls.py
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    min_tokens: int | None = Field(default=None, ge=0)
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    structured_outputs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    ignore_eos: bool = False
    press: PressSpec | None = Field(default=None, description="press for this plain request's prompt")
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024,
                                   description="vLLM's field: scopes prefix reuse (deployments/prefix_scope.py)")

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return check_messages(value, "messages")

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.stream_options is not None and not self.stream:
            raise InvalidField("stream_options is only allowed when stream is true", "stream_options")
        if self.top_logprobs and not self.logprobs:
            raise InvalidField("top_logprobs requires logprobs to be true", "top_logprobs")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise InvalidField("stop accepts at most 4 sequences", "stop")
        for token, bias in (self.logit_bias or {}).items():
            if not -100 <= bias <= 100:
                raise InvalidField(f"logit_bias[{token!r}] must be within [-100, 100]", "logit_bias")
        return self

    def unsupported(self) -> str | None:
        """A message naming the first field set to something kvfleet does not implement, else None."""
        if self.tools or self.tool_choice not in (None, "none"):
            return "tools / tool_choice are not supported by this server"
        return None

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class SessionCreateRequest(_Strict):
    """Load a context once. Exactly one of ``context`` (text), ``documents`` (joined with blank
    lines) or ``messages`` (a chat history). ``press`` defaults to the configured press."""

    model: str
    context: str | None = None
    documents: list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    press: PressSpec | None = None
    ttl_s: float | None = Field(default=None, gt=0)
    pinned: bool = False
    wait: bool = Field(default=True, description="false: return 202 at once and poll GET /v1/sessions/{id}")
    stream: bool = Field(default=False, description="true: stream progress events as server-sent events")

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return value if value is None else check_messages(value, "messages")

    @model_validator(mode="after")
    def _one_context(self) -> "SessionCreateRequest":
        given = [n for n in ("context", "documents", "messages") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of context, documents or messages (got {given or 'none'})")
        if self.context is not None and not self.context.strip():
            raise ValueError("context must not be empty")
        if self.documents is not None and not any(d.strip() for d in self.documents):
            raise ValueError("documents must not be empty")
        if self.messages is not None and not self.messages:
            raise ValueError("messages must not be empty")
        return self

    def context_value(self) -> str | list[dict[str, Any]]:
        if self.messages is not None:
            return self.messages
        if self.documents is not None:
            return "\n\n".join(self.documents)
        return self.context or ""


class AdminMoveRequest(_Closed):
    session_id: str
    target_replica: str | None = None
    method: Literal["transfer", "rebuild"] = "transfer"


class AdminCompressRequest(_Closed):
    session_id: str
    compression_ratio: float | None = Field(default=None, gt=0, lt=1)
    codec: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "AdminCompressRequest":
        if (self.compression_ratio is None) == (self.codec is None):
            raise ValueError("give exactly one of compression_ratio (re-prune) or codec (quantize)")
        return self
