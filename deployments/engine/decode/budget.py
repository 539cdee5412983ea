"""Admission arithmetic for a decode step; pure, answers yes/no and never raises."""

from __future__ import annotations

from collections.abc import Sequence

from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.request import DecodeRequest


def step_tokens(running: Sequence[DecodeRequest], joins: Sequence[DecodeRequest]) -> int:
    """Tokens fed in one step: one per running row plus each joiner's question."""
    return len(running) + sum(r.question_tokens for r in joins)


def padded_tokens(rows: Sequence[DecodeRequest]) -> int:
    """Padded working set in token positions: rows x longest row (the batch cache's shape)."""
    return len(rows) * max((r.columns for r in rows), default=0)


def padding_waste(rows: Sequence[DecodeRequest]) -> float:
    """Fraction of the padded working set that is padding (0.0 = no waste)."""
    total = padded_tokens(rows)
    return 0.0 if total == 0 else 1.0 - sum(r.columns for r in rows) / total


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
    return padded_tokens(rows) <= config.max_padded_tokens


def extend_groups(question_tokens: Sequence[int], max_padding: float = 0.25,
                  padding_allowance: int = 64) -> list[list[int]]:
    """Split a step's joiners (their question lengths) into batched extend forwards.

    Questions of one forward are right-padded to its longest; a forward has a fixed cost (reading
    the weights), padding a per-token one. So a row joins the current group while the group's
    padding stays within ``padding_allowance`` tokens or ``max_padding`` of its real tokens,
    whichever is larger: similar questions share a forward, a long prompt does not pad short ones.
    Longest first, greedily. Returns lists of indices into ``question_tokens`` (each once).
    """
    order = sorted(range(len(question_tokens)), key=lambda i: (-question_tokens[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups:
            group = groups[-1]
            real = sum(question_tokens[j] for j in group) + question_tokens[i]
            padding = (len(group) + 1) * question_tokens[group[0]] - real
            if padding <= max(padding_allowance, max_padding * real):
                group.append(i)
                continue
        groups.append([i])
    return groups
