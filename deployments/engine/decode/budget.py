"""Admission arithmetic for a decode step; pure, answers yes/no and never raises."""

from __future__ import annotations

from collections.abc import Sequence

from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.request import DecodeRequest


def step_tokens(running: Sequence[DecodeRequest], joins: Sequence[DecodeRequest]) -> int:
    """Tokens fed in one step: one per running row plus each joiner's question."""
    return len(running) + sum(r.question_tokens for r in joins)


def kv_tokens(rows: Sequence[DecodeRequest]) -> int:
    """KV columns the rows' caches hold after their next token (each row's own buffers, summed)."""
    return sum(r.columns for r in rows)


def fits(config: BatchConfig, running: Sequence[DecodeRequest], joins: Sequence[DecodeRequest],
         candidate: DecodeRequest) -> bool:
    """May ``candidate`` join this step? An empty step admits anything (no request starves)."""
    if not running and not joins:
        return True
    rows = [*running, *joins, candidate]
    if len(rows) > config.max_batch_size:
        return False
    if step_tokens(running, [*joins, candidate]) > config.max_batched_tokens:
        return False
    return kv_tokens(rows) <= config.max_kv_tokens
