"""least_bytes: the replica whose device tier would be least full after taking the session."""

from __future__ import annotations

from typing import Sequence

from control_plane.cluster_view import ClusterView
from control_plane.placement.base import PlacementDecision, PlacementPolicy, PlacementRequest, least_loaded
from control_plane.replica import ReplicaView


class LeastBytesPlacement(PlacementPolicy):
    """Lowest (device bytes held + estimate) / device capacity; ties: shorter queue, then id."""

    name = "least_bytes"

    def choose(self, request: PlacementRequest, candidates: Sequence[ReplicaView],
               view: ClusterView) -> PlacementDecision:
        best = least_loaded(candidates, request.estimated_bytes)
        return self.decide(request, best, f"lowest device pressure after placing: "
                                          f"{best.pressure(request.estimated_bytes):.3f}")
