"""The per-request logits-processor interface (one row of logits, stateful across steps).

A processor sees the row of next-token logits *before* sampling and changes it in place; after a
token is chosen the sampler calls ``record(token_id)`` on every processor so state (counts,
grammar position, tokens produced) follows the generation. The sampler owns the processors of
one request; a batched decode step calls each row's sampler with that row's logits.
"""

from __future__ import annotations

from typing import Protocol

import torch


class LogitsProcessor(Protocol):
    def apply(self, logits: torch.Tensor) -> None:
        """Change ``logits`` (1-D float ``[vocab]``, a private copy) in place."""

    def record(self, token_id: int) -> None:
        """The token chosen at this step (called once per generated token)."""
