"""Placement: which replica gets a new (or re-placed) session. Policies decide; the shell acts.

A policy sees only replicas that may take the session (``eligible_replicas``) and returns a
``PlacementDecision`` - plain data with the reason it was chosen.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterable, Sequence

from control_plane.cluster_view import ClusterView
from control_plane.errors import InsufficientCapacity, NoReplicaAvailable
from control_plane.ids import ANONYMOUS_OWNER, NodeId, ReplicaId, SessionId
from control_plane.replica import ReplicaView
from control_plane.session import SessionRecord


@dataclass(frozen=True)
class PlacementRequest:
    """What placement needs to know about a session: who, which model, what context, how big.

    ``estimated_bytes``: expected compressed cache size (0 if unknown); ``exclude``: replicas
    that must not be chosen (e.g. a migration's source).
    """

    session_id: SessionId
    model: str
    owner: str = ANONYMOUS_OWNER
    context_hash: str | None = None
    estimated_bytes: int = 0
    exclude: frozenset[ReplicaId] = frozenset()

    @classmethod
    def for_record(cls, record: SessionRecord, *, estimated_bytes: int | None = None,
                   exclude: Iterable[ReplicaId] = ()) -> "PlacementRequest":
        """A request for an existing session (re-placement); size defaults to its stored bytes."""
        return cls(session_id=record.id, model=record.model, owner=record.owner, context_hash=record.context_hash,
                   estimated_bytes=record.stored_bytes if estimated_bytes is None else estimated_bytes,
                   exclude=frozenset(exclude))


@dataclass(frozen=True)
class PlacementDecision:
    """Put ``session_id`` on ``replica_id`` (on ``node``); ``policy`` chose it because ``reason``."""

    session_id: SessionId
    replica_id: ReplicaId
    node: NodeId
    policy: str
    reason: str


def eligible_replicas(request: PlacementRequest, view: ClusterView) -> list[ReplicaView]:
    """Alive, non-draining, non-excluded replicas with room (all tiers) for the estimated bytes -
    of those, the ones whose actors are not restarting, unless all are (a load placed on a
    restarting replica waits for its model to start: seconds, not the load's own time).

    Raises NoReplicaAvailable (503) when no replica is alive and accepting, and
    InsufficientCapacity (429) when some are but none has room.
    """
    accepting = [r for r in view.accepting_replicas() if r.replica_id not in request.exclude]
    if not accepting:
        states = ", ".join(
            f"{r.replica_id}={'dead' if not r.alive else 'draining' if r.draining else 'excluded'}"
            for r in view.replicas()
        ) or "no replica has sent a heartbeat"
        raise NoReplicaAvailable(f"no replica can take session {request.session_id} ({states}); "
                                 "start or undrain a replica and retry")
    roomy = [r for r in accepting if r.free_bytes_total() >= request.estimated_bytes]
    if not roomy:
        free = ", ".join(f"{r.replica_id}={r.free_bytes_total()}" for r in accepting)
        raise InsufficientCapacity(f"no replica has {request.estimated_bytes} free bytes for session "
                                   f"{request.session_id} (free bytes: {free}); delete sessions or retry later")
    return [r for r in roomy if not r.restarting] or roomy


class PlacementPolicy(ABC):
    """Chooses one replica among the eligible ones. Subclasses implement ``choose``."""

    name: ClassVar[str]

    def place(self, request: PlacementRequest, view: ClusterView) -> PlacementDecision:
        """Decide where the session goes; raises NoReplicaAvailable or InsufficientCapacity."""
        return self.choose(request, eligible_replicas(request, view), view)

    @abstractmethod
    def choose(self, request: PlacementRequest, candidates: Sequence[ReplicaView],
               view: ClusterView) -> PlacementDecision:
        """Pick one of ``candidates`` (non-empty, all eligible)."""

    def decide(self, request: PlacementRequest, replica: ReplicaView, reason: str) -> PlacementDecision:
        return PlacementDecision(request.session_id, replica.replica_id, replica.node, self.name, reason)


def least_loaded(candidates: Sequence[ReplicaView], extra_device_bytes: int = 0) -> ReplicaView:
    """The candidate with the lowest device pressure after adding ``extra_device_bytes``;
    ties go to the shorter queue, then the smaller replica id (deterministic)."""
    return min(candidates, key=lambda r: (r.pressure(extra_device_bytes), r.queue_depth, r.replica_id))
