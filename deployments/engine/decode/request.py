"""Decode-request lifecycle (vLLM's ``RequestStatus``) and the scheduler's per-request record.

Pure data: no torch. The runtime side (cache, sampler, detokenizer) lives in ``runner.RowWork``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RowState(enum.Enum):
    WAITING = "waiting"    # queued, not in the batch yet
    RUNNING = "running"    # in the batch: one token per step
    FINISHED = "finished"  # done (see ``finish_reason``); leaves the batch at the next step


@dataclass
class DecodeRequest:
    """What the scheduler knows of a generation.

    ``question_tokens``: tokens fed when it joins (its extend/prefill chunk).
    ``cache_tokens``: columns of its cache when it joins (longest head of the stored cache).
    ``max_tokens`` / ``ignore_eos``: its stop rules. ``produced``: tokens sampled so far.
    ``finish_reason``: "stop", "length", "cancelled" or "error" once finished.
    """

    request_id: str
    question_tokens: int
    cache_tokens: int
    max_tokens: int
    ignore_eos: bool = False
    state: RowState = RowState.WAITING
    produced: int = 0
    finish_reason: str | None = None

    @property
    def columns(self) -> int:
        """Cache columns this row holds after its next token (for the KV working set)."""
        return self.cache_tokens + self.question_tokens + self.produced + 1
