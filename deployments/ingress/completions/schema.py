"""Request body of ``POST /v1/completions`` (closed: unknown fields are a 400).

Fields and ranges from the OpenAI API reference (Completions) and vLLM's ``CompletionRequest``:

- ``prompt``: a string, a list of strings, a list of token ids, or a list of token-id lists; each
  prompt gets ``n`` choices (choice ``index = prompt_index * n + i``, as vLLM numbers them);
- ``max_tokens`` (OpenAI default 16; 0 with ``echo`` returns only the prompt), ``temperature``,
  ``top_p``, ``n``, ``stop``, ``seed``, ``logprobs`` (int: the top alternatives per token),
  ``echo``, ``stream`` + ``stream_options``, ``presence_penalty``, ``frequency_penalty``,
  ``logit_bias``, ``user``; ``best_of`` only when it equals ``n`` (vLLM's V1 engine), ``suffix``
  never (400: this server does not insert text);
- vLLM's extras: ``top_k``, ``min_p``, ``repetition_penalty``, ``min_tokens``, ``stop_token_ids``, ``ignore_eos``,
  ``add_special_tokens`` (default true: the tokenizer's BOS is prepended to a text prompt),
  ``response_format`` and the guided-decoding fields (deployments/ingress/chat/controls.py);
- kvfleet's: ``session_id`` (the prompt continues that session's stored context), ``press`` and
  ``cache_salt`` (plain prompts, as for chat).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from deployments.common.schema_base import StrictModel
from deployments.ingress.chat.messages import InvalidField
from deployments.ingress.chat.schema import StreamOptions
from kvpool.press_spec import PressSpec

Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(StrictModel):
    model: str
    prompt: Prompt
    session_id: str | None = None
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)
    echo: bool = False
    max_tokens: int | None = Field(default=16, ge=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    # vLLM extras (controls: deployments/ingress/chat/controls.py)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    min_tokens: int | None = Field(default=None, ge=0)
    stop_token_ids: list[int] | None = Field(default=None, max_length=64,
                                             description="vLLM: token ids that end the answer when sampled")
    ignore_eos: bool = False
    add_special_tokens: bool = True
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    structured_outputs: dict[str, Any] | None = None
    press: PressSpec | None = Field(default=None, description="press for this plain request's prompt")
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _consistent(self) -> "CompletionRequest":
        if self.stream_options is not None and not self.stream:
            raise InvalidField("stream_options is only allowed when stream is true", "stream_options")
        if self.suffix is not None:
            raise InvalidField("suffix is not supported by this server (no fill-in-the-middle)", "suffix",
                               "unsupported_parameter")
        if self.best_of is not None and self.best_of != self.n:
            raise InvalidField(f"best_of ({self.best_of}) must equal n ({self.n}): this server returns every "
                               "sequence it samples", "best_of", "unsupported_parameter")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise InvalidField("stop accepts at most 4 sequences", "stop")
        if isinstance(self.prompt, list) and not self.prompt:
            raise InvalidField("prompt must not be an empty list", "prompt")
        for i, one in enumerate(self.prompt if isinstance(self.prompt, list) else ()):
            if isinstance(one, list) and not one:
                raise InvalidField(f"prompt[{i}] must not be an empty list of token ids", f"prompt[{i}]")
        for token, bias in (self.logit_bias or {}).items():
            if not -100 <= bias <= 100:
                raise InvalidField(f"logit_bias[{token!r}] must be within [-100, 100]", "logit_bias")
        return self

    def prompts(self) -> list[str | list[int]]:
        """Each prompt of the request: a text or a list of token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(t, int) for t in self.prompt):
            return [list(self.prompt)]
        return list(self.prompt)

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
