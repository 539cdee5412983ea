"""Request body of ``POST /v1/chat/completions`` (closed: unknown fields are a 400).

Fields vLLM's server accepts are either supported or rejected with a clear message by
``ChatCompletionRequest.unsupported`` - never silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deployments.common.schema_base import StrictModel
from deployments.ingress.chat.messages import InvalidField, check_messages
from deployments.ingress.tools.schema import check_history
from kvpool.press_spec import PressSpec


class StreamOptions(StrictModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ChatCompletionRequest(StrictModel):
    """Value ranges from the OpenAI API reference (Chat Completions) and vLLM's request model;
    ``messages`` are checked by deployments.ingress.chat.messages (400 with ``param`` naming the field)."""

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
    # vLLM extras; checked and translated by deployments/ingress/chat/controls.py
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    min_tokens: int | None = Field(default=None, ge=0)
    stop_token_ids: list[int] | None = Field(default=None, max_length=64,
                                             description="vLLM: token ids that end the answer when sampled")
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    structured_outputs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None, description='OpenAI function tools: [{"type": "function", "function": {"name", "description", '
        '"parameters": <JSON schema>, "strict"}}] (checked by deployments/ingress/tools; docs/tools.md)')
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = Field(
        default=None, description='"none" | "auto" (default with tools) | "required" | '
        '{"type": "function", "function": {"name": ...}}')
    parallel_tool_calls: bool | None = Field(default=None, description="false: at most one call per answer")
    ignore_eos: bool = False
    # vLLM chat extras (issue 24): sampling filters, and prompt rendering (deployments/ingress/chat_template.py)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    echo: bool = False
    press: PressSpec | None = Field(default=None, description="press for this plain request's prompt")
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024,
                                   description="vLLM's field: scopes prefix reuse (deployments/common/prefix_scope.py)")

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return check_messages(value, "messages", tools=True)

    @model_validator(mode="after")
    def _consistent(self) -> "ChatCompletionRequest":
        if self.stream_options is not None and not self.stream:
            raise InvalidField("stream_options is only allowed when stream is true", "stream_options")
        if self.top_logprobs and not self.logprobs:
            raise InvalidField("top_logprobs requires logprobs to be true", "top_logprobs")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise InvalidField("stop accepts at most 4 sequences", "stop")
        check_history(self.messages)  # tool_call_id / arguments JSON (deployments/ingress/tools/schema.py)
        for token, bias in (self.logit_bias or {}).items():
            if not -100 <= bias <= 100:
                raise InvalidField(f"logit_bias[{token!r}] must be within [-100, 100]", "logit_bias")
        return self

    def unsupported(self) -> str | None:
        """A message naming the first field set to something kvfleet does not implement, else None."""
        return None

    def renders_own_prompt(self) -> bool:
        """True when a template option differs from the default rendering (the prompt is then
        rendered by the ingress and served as token ids, like a text completion)."""
        return (not self.add_generation_prompt or self.continue_final_message
                or self.chat_template_kwargs is not None)

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
