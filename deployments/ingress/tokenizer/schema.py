"""Request bodies of ``POST /tokenize`` and ``POST /detokenize`` (vLLM's ``TokenizeCompletionRequest``
/ ``TokenizeChatRequest`` / ``DetokenizeRequest``), closed: unknown fields are a 400.

``/tokenize`` takes either ``prompt`` (text; ``add_special_tokens`` defaults to true, as for a
completion prompt) or chat ``messages`` (rendered with the chat template; ``add_special_tokens``
defaults to false, the template writes them; ``add_generation_prompt`` defaults to true; ``tools``
are rendered into the prompt as ``/v1/chat/completions`` renders them, deployments/ingress/tools).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from deployments.common.schema_base import StrictModel
from deployments.ingress.chat.messages import InvalidField, check_messages


class TokenizeRequest(StrictModel):
    model: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    add_special_tokens: bool | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, description="OpenAI function tools, with messages")
    return_token_strs: bool = False

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return value if value is None else check_messages(value, "messages", tools=True)

    @model_validator(mode="after")
    def _one_input(self) -> "TokenizeRequest":
        if (self.prompt is None) == (self.messages is None):
            raise InvalidField("give exactly one of 'prompt' (text) or 'messages' (chat)", "prompt")
        if self.prompt is not None and ("add_generation_prompt" in self.model_fields_set
                                        or self.continue_final_message or self.chat_template_kwargs):
            raise InvalidField("add_generation_prompt, continue_final_message and chat_template_kwargs apply to "
                               "'messages' only", "add_generation_prompt")
        if self.prompt is not None and self.tools is not None:
            raise InvalidField("tools apply to 'messages' only", "tools")
        return self

    def special_tokens(self) -> bool:
        """vLLM's defaults: true for a text prompt, false for chat messages (the template adds them)."""
        if self.add_special_tokens is not None:
            return self.add_special_tokens
        return self.prompt is not None


class DetokenizeRequest(StrictModel):
    model: str | None = None
    tokens: list[int] = Field(description="token ids to turn back into text")
