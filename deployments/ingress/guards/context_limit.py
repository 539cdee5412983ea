"""ContextLimit: the ingress enforces ``limits.max_context_tokens`` on the *tokenized* context
before anything is placed or prefilled (HTTP 413 ``context_length_exceeded``).

It tokenizes exactly as the engine does (same tokenizer, same chat-template frames), so the count
is the number of tokens a replica would read. Only the tokenizer is loaded, never the weights.

The work is bounded before any tokenization, so a huge context costs microseconds, not seconds:

1. **character bound**: no token of the vocabulary is longer than ``max_chars_per_token``
   characters (measured from the vocabulary at start-up), so a context of more than
   ``(limit + 1) * max_chars_per_token`` characters has more than ``limit`` tokens - 413 without
   rendering or tokenizing anything;
2. **prefix count**: a long rendered prompt is tokenized only up to ``PREFIX_CHARS_PER_TOKEN *
   (limit + 1)`` characters first; if that prefix alone is over the limit (with a margin for the
   token that straddles the cut), it is a 413 and the rest is never tokenized;
3. otherwise the exact count of the whole prompt (at most the character bound), whose ids must
   all be readable by the model (400 otherwise, ``check_ids``).
"""

from __future__ import annotations

from typing import Any

PREFIX_CHARS_PER_TOKEN = 8  # typical text is ~4 characters per token: the prefix holds ~2x the limit
_CUT_MARGIN_TOKENS = 8      # tokens a cut in the middle of a word can add

from deployments.engine.engine import ContextTooLongError
from deployments.engine.model_loader import ModelConfig, resolve_model_path
from deployments.engine.prompt import PromptError, PromptRenderer


def model_vocab_size(path: str, tokenizer: Any) -> int:
    """Token ids the served model can read: its config's ``vocab_size`` (the embedding's rows)
    when the tokenizer defines more tokens than that, else the tokenizer's size."""
    from transformers import AutoConfig

    rows = getattr(AutoConfig.from_pretrained(path), "vocab_size", None)
    return min(len(tokenizer), rows) if rows else len(tokenizer)


class ContextLimit:
    def __init__(self, model: ModelConfig, max_context_tokens: int):
        from transformers import AutoTokenizer

        path, _ = resolve_model_path(model)
        self.model_path = path  # what the tokenizer and weights load from (vLLM's model card ``root``)
        tokenizer = AutoTokenizer.from_pretrained(path)
        self.renderer = PromptRenderer(tokenizer)
        self.max_context_tokens = max_context_tokens
        self.max_chars_per_token = max_chars_per_token(tokenizer)
        self.vocab_size = model_vocab_size(path, tokenizer)

    def count(self, context: str | list[dict[str, Any]]) -> int:
        """Tokens of a session context (text) or of a chat prompt (messages), exactly."""
        return len(self.renderer.encode(self._frame_text(context)))

    def _frame_text(self, context: str | list[dict[str, Any]]) -> str:
        frame = (self.renderer.document_frame(context) if isinstance(context, str)
                 else self.renderer.chat_frame(context))
        return frame.prefix_text

    def check_chars(self, context: str | list[dict[str, Any]]) -> None:
        """Step 1 alone (no tokenization): ContextTooLongError (413) when ``context`` has more
        characters than ``max_context_tokens`` tokens can spell."""
        limit = self.max_context_tokens
        chars = context_chars(context)
        if chars > (limit + 1) * self.max_chars_per_token:
            raise ContextTooLongError(f"context has {chars} characters, so more than {limit} tokens; this server "
                                      f"accepts at most {limit} (limits.max_context_tokens)")

    def check(self, context: str | list[dict[str, Any]]) -> int:
        """The token count; raises ContextTooLongError (413) above ``max_context_tokens``, doing
        bounded work for any input (see the module docstring)."""
        limit = self.max_context_tokens
        self.check_chars(context)
        text = self._frame_text(context)
        cut = PREFIX_CHARS_PER_TOKEN * (limit + 1)
        if len(text) > cut:
            prefix_tokens = len(self.renderer.encode(text[:cut]))
            if prefix_tokens > limit + _CUT_MARGIN_TOKENS:
                raise ContextTooLongError(f"context has more than {prefix_tokens - _CUT_MARGIN_TOKENS} tokens; "
                                          f"this server accepts at most {limit} (limits.max_context_tokens)")
        ids = self.renderer.encode(text)
        if len(ids) > limit:
            raise ContextTooLongError(f"context has {len(ids)} tokens; this server accepts at most "
                                      f"{limit} (limits.max_context_tokens)")
        self.check_ids(ids)
        return len(ids)

    def check_ids(self, ids: list[int]) -> None:
        """PromptError (400) when the text spells a token the model cannot read (an id the tokenizer
        defines above the model's embedding rows, e.g. ``<FILL_ME>`` in the embedded model's) -
        the engine refuses it too (``KVEngine.check_ids``); here it is refused before any placement."""
        bad = next((t for t in ids if t >= self.vocab_size), None)
        if bad is not None:
            name = self.renderer.tokenizer.convert_ids_to_tokens(bad)
            raise PromptError(f"the text holds {name!r} (token id {bad}), which this model cannot read (its "
                              f"vocabulary is ids 0..{self.vocab_size - 1})")


def max_chars_per_token(tokenizer: Any) -> int:
    """An upper bound on the characters one token decodes to: the longest vocabulary entry (byte-level
    BPE and SentencePiece spell each byte / character as at least one character of the entry)."""
    return max(len(token) for token in tokenizer.get_vocab())


def context_chars(context: str | list[dict[str, Any]]) -> int:
    """Characters of the text a context carries (message contents and text parts), before rendering."""
    if isinstance(context, str):
        return len(context)
    total = 0
    for message in context:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return total
