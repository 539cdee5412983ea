"""affinity: keep sessions that share a context, or an owner, on one replica.

Same context (model + context hash) first: that replica's prefix index already holds the
compressed prefix, so the new session is prefilled almost for free. Then same owner (a tenant's
sessions share prompts and system messages). Otherwise - or when the affine replica is fuller than
``max_pressure`` - the wrapped fallback policy decides.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from control_plane.cluster_view import ClusterView
from control_plane.ids import ANONYMOUS_OWNER, ReplicaId
from control_plane.placement.base import PlacementDecision, PlacementPolicy, PlacementRequest
from control_plane.replica import ReplicaView


class AffinityPlacement(PlacementPolicy):
    """Prefer the replica holding most sessions with the same context, then the same owner."""

    name = "affinity"

    def __init__(self, fallback: PlacementPolicy, max_pressure: float = 0.9) -> None:
        self.fallback = fallback
        self.max_pressure = max_pressure

    def choose(self, request: PlacementRequest, candidates: Sequence[ReplicaView],
               view: ClusterView) -> PlacementDecision:
        if request.context_hash is not None:
            best = self._most_shared(candidates, view.context_replicas(request.context_hash), request)
            if best is not None:
                return self.decide(request, best, f"affinity: same context {request.context_hash} already there")
        if request.owner != ANONYMOUS_OWNER:
            best = self._most_shared(candidates, view.owner_replicas(request.owner), request)
            if best is not None:
                return self.decide(request, best, f"affinity: owner {request.owner} has sessions there")
        decision = self.fallback.choose(request, candidates, view)
        return self.decide(request, view.replica(decision.replica_id),
                           f"no affine replica with room; {self.fallback.name}: {decision.reason}")

    def _most_shared(self, candidates: Sequence[ReplicaView], counts: Mapping[ReplicaId, int],
                     request: PlacementRequest) -> ReplicaView | None:
        affine = [r for r in candidates
                  if counts.get(r.replica_id, 0) > 0 and r.pressure(request.estimated_bytes) <= self.max_pressure]
        if not affine:
            return None
        return min(affine, key=lambda r: (-counts[r.replica_id], r.pressure(request.estimated_bytes), r.replica_id))
