"""FINCH over a fixed observation window, for contexts loaded without a question.

kvpress's ``FinchPress`` scores the context with the attention of the text that follows a
delimiter token (``context + <delimiter> + question``); it needs ``update_model_and_tokenizer``,
which adds a token to the tokenizer and resizes the shared model's embeddings. A kvfleet session
is loaded before any question is known, so this adapter scores with the last ``window_size``
tokens of the prefilled text instead (as SnapKV does), then keeps FINCH's own chunked top-k
selection and key re-rotation. The press is therefore query-aware (it scores against the end of
the context). Source: FINCH (Corallo & Papotti, TACL 2024), kvpress ``FinchPress``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvpress import BasePress, FinchPress


@dataclass
class WindowFinchPress(FinchPress):
    """``FinchPress`` whose observation window is the last ``window_tokens`` tokens (>= 1)."""

    window_tokens: int = 64

    def __post_init__(self):
        if self.window_tokens < 1:
            raise ValueError(f"window_tokens must be >= 1, got {self.window_tokens}")

    def compress(self, module, hidden_states, keys, values, attentions, kwargs):
        # never score the whole context as its own window: keep at least one context token
        self.window_size = max(1, min(self.window_tokens, keys.shape[2] - 1))
        return super().compress(module, hidden_states, keys, values, attentions, kwargs)

    def __call__(self, model):
        # BasePress's hooks only: no delimiter token, no embedding hook
        return BasePress.__call__(self, model)
