"""The plain-request routing interface: a request (the prompt's prefix block hashes), the replicas'
loads, and a decision with its reason (as control_plane.placement does for sessions)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Mapping

from control_plane.ids import ReplicaId


@dataclass(frozen=True)
class PlainRouteRequest:
    """``block_hashes``: chained hashes of the prompt's prefix (control_plane.routing.text_blocks),
    scope (owner + cache_salt), model and press included, so tenants never share affinity."""

    block_hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class RouteDecision:
    """Send the request to ``replica_id``; ``matched_blocks`` of its prefix are believed stored there."""

    replica_id: ReplicaId
    policy: str
    reason: str
    matched_blocks: int = 0


def least_loaded_replica(loads: Mapping[ReplicaId, int], turn: int = 0) -> ReplicaId:
    """The replica with the fewest in-flight requests; ties rotate with ``turn`` (so equal replicas
    share new prefixes instead of the first one taking them all). ValueError on no replica."""
    if not loads:
        raise ValueError("no replica to route to")
    fewest = min(loads.values())
    tied = sorted(r for r, load in loads.items() if load == fewest)
    return tied[turn % len(tied)]


class PlainRoutingPolicy(ABC):
    """Chooses one of ``loads``' replicas (replica -> in-flight requests) for a plain request."""

    name: ClassVar[str]

    @abstractmethod
    def choose(self, request: PlainRouteRequest, loads: Mapping[ReplicaId, int]) -> RouteDecision:
        """Pick a replica among ``loads`` (non-empty)."""

    def observe(self, request: PlainRouteRequest, decision: RouteDecision) -> None:
        """The request was sent as decided (the replica will store its prefix); default: nothing."""

    def forget_replica(self, replica_id: ReplicaId) -> None:
        """The replica lost its prefix cache (restart); default: nothing."""
