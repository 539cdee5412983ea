"""Render chat messages with the served model's chat template, with vLLM's template options - the
one place the ingress turns ``messages`` into prompt text (``/tokenize`` and chat requests that set
``add_generation_prompt``, ``continue_final_message`` or ``chat_template_kwargs``).

Semantics (vLLM ``ChatCompletionRequest`` / ``TokenizeChatRequest``; transformers
``apply_chat_template``):

- ``add_generation_prompt`` (default true): end with the assistant header, so the model answers;
- ``continue_final_message``: leave the last message open (no end-of-turn), so the model continues
  it; it needs the last message to be the assistant's and ``add_generation_prompt`` false (400);
- ``chat_template_kwargs``: extra variables for the template (e.g. ``enable_thinking``); names the
  renderer sets itself are a 400 naming the key.

Raises ``APIError`` 400 (``param`` names the field) or ``PromptError`` (400) for messages the
template cannot render.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError

from deployments.engine.prompt import PromptError, PromptRenderer, normalize_messages
from deployments.ingress.errors import APIError

RESERVED_TEMPLATE_KWARGS = frozenset({"messages", "conversation", "tools", "documents", "add_generation_prompt",
                                      "continue_final_message", "tokenize", "chat_template", "return_dict",
                                      "return_tensors", "padding", "truncation", "max_length", "tokenizer_kwargs"})
MAX_TEMPLATE_KWARGS = 32


def check_template_options(messages: list[dict[str, Any]], add_generation_prompt: bool, continue_final_message: bool,
                           chat_template_kwargs: dict[str, Any] | None) -> None:
    """400 for options vLLM refuses too, before any rendering."""
    if continue_final_message and add_generation_prompt:
        raise APIError(400, "continue_final_message and add_generation_prompt cannot both be true "
                            "(set add_generation_prompt to false to continue the last message)",
                       "invalid_request", param="continue_final_message")
    if continue_final_message and (not messages or messages[-1].get("role") != "assistant"):
        raise APIError(400, "continue_final_message needs the last message to be the assistant's",
                       "invalid_request", param="continue_final_message")
    kwargs = chat_template_kwargs or {}
    if len(kwargs) > MAX_TEMPLATE_KWARGS:
        raise APIError(400, f"chat_template_kwargs has {len(kwargs)} keys; at most {MAX_TEMPLATE_KWARGS}",
                       "limit_exceeded", param="chat_template_kwargs")
    reserved = sorted(set(kwargs) & RESERVED_TEMPLATE_KWARGS)
    if reserved:
        raise APIError(400, f"chat_template_kwargs may not set {reserved} (the server sets them)",
                       "invalid_request", param=f"chat_template_kwargs.{reserved[0]}")


def render_chat(renderer: PromptRenderer, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
                continue_final_message: bool = False, chat_template_kwargs: dict[str, Any] | None = None) -> str:
    """The prompt text of ``messages`` (checked by ``check_template_options`` first)."""
    check_template_options(messages, add_generation_prompt, continue_final_message, chat_template_kwargs)
    if not renderer.has_template:
        raise PromptError("this model has no chat template; send a text prompt instead of messages")
    try:
        return renderer.tokenizer.apply_chat_template(
            normalize_messages(messages), add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message, tokenize=False, **(chat_template_kwargs or {}))
    except (ValueError, TypeError, KeyError, TemplateError) as exc:  # the template refusing these inputs
        raise PromptError(f"the chat template cannot render these messages: {exc}") from exc
