"""ContextLimit: the ingress enforces ``limits.max_context_tokens`` on the *tokenized* context
before anything is placed or prefilled (HTTP 413 ``context_length_exceeded``).

It tokenizes exactly as the engine does (same tokenizer, same chat-template frames), so the count
is the number of tokens a replica would read. Only the tokenizer is loaded, never the weights.
"""

from __future__ import annotations

from typing import Any

from deployments.engine.engine import ContextTooLongError
from deployments.engine.model_loader import ModelConfig, resolve_model_path
from deployments.engine.prompt import PromptRenderer


class ContextLimit:
    def __init__(self, model: ModelConfig, max_context_tokens: int):
        from transformers import AutoTokenizer

        path, _ = resolve_model_path(model)
        self.renderer = PromptRenderer(AutoTokenizer.from_pretrained(path))
        self.max_context_tokens = max_context_tokens

    def count(self, context: str | list[dict[str, Any]]) -> int:
        """Tokens of a session context (text) or of a chat prompt (messages)."""
        frame = (self.renderer.document_frame(context) if isinstance(context, str)
                 else self.renderer.chat_frame(context))
        return len(self.renderer.encode(frame.prefix_text))

    def check(self, context: str | list[dict[str, Any]]) -> int:
        """The token count; raises ContextTooLongError (413) above ``max_context_tokens``."""
        tokens = self.count(context)
        if tokens > self.max_context_tokens:
            raise ContextTooLongError(f"context has {tokens} tokens; this server accepts at most "
                                      f"{self.max_context_tokens} (limits.max_context_tokens)")
        return tokens
