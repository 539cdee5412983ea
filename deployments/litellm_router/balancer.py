"""Load balancing for requests without a session, and placement of new sessions."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any


def deployment_id(deployment: Mapping[str, Any]) -> str:
    return str((deployment.get("model_info") or {}).get("id"))


class RoundRobin:
    """Round-robin over the candidates, per model group (candidates ordered by deployment id)."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count] = {}

    def pick(self, model_group: str, candidates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        ordered = sorted(candidates, key=deployment_id)
        turn = next(self._counters.setdefault(model_group, itertools.count()))
        return ordered[turn % len(ordered)]


def fewest_sessions(candidates: Sequence[Mapping[str, Any]], homes: Mapping[str, int],
                    rr: RoundRobin, model_group: str) -> Mapping[str, Any]:
    """The candidate holding the fewest sessions; ties broken round-robin."""
    least = min(homes.get(deployment_id(d), 0) for d in candidates)
    tied = [d for d in candidates if homes.get(deployment_id(d), 0) == least]
    return rr.pick(f"{model_group}#sessions", tied)
