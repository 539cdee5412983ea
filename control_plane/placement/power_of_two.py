"""power_of_two: sample two replicas at random, keep the less loaded (queue depth + bytes).

Power-of-two choices keeps load close to the least-loaded replica without every control plane
herding onto the same one, and costs O(1) per decision however many replicas there are.
"""

from __future__ import annotations

import random
from typing import Sequence

from control_plane.cluster_view import ClusterView
from control_plane.placement.base import PlacementDecision, PlacementPolicy, PlacementRequest
from control_plane.replica import ReplicaView


class PowerOfTwoPlacement(PlacementPolicy):
    """Score = queue_depth + ``bytes_weight`` x device pressure after placing; lower wins.

    ``rng`` is injectable (seed it for reproducible tests); ``bytes_weight`` says how many queued
    requests a full device tier is worth.
    """

    name = "power_of_two"

    def __init__(self, rng: random.Random | None = None, bytes_weight: float = 8.0) -> None:
        self.rng = rng or random.Random()
        self.bytes_weight = bytes_weight

    def score(self, replica: ReplicaView, estimated_bytes: int) -> float:
        return replica.queue_depth + self.bytes_weight * replica.pressure(estimated_bytes)

    def choose(self, request: PlacementRequest, candidates: Sequence[ReplicaView],
               view: ClusterView) -> PlacementDecision:
        if len(candidates) == 1:
            return self.decide(request, candidates[0], "only eligible replica")
        first, second = self.rng.sample(list(candidates), 2)
        a, b = self.score(first, request.estimated_bytes), self.score(second, request.estimated_bytes)
        best, other = (first, second) if (a, first.replica_id) <= (b, second.replica_id) else (second, first)
        return self.decide(request, best, f"power of two: score {min(a, b):.2f} beat {other.replica_id} "
                                          f"at {max(a, b):.2f}")
