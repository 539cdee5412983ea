"""round_robin: plain requests take turns over the replicas (the baseline prefix_affinity beats)."""

from __future__ import annotations

import itertools
from typing import Mapping

from control_plane.ids import ReplicaId
from control_plane.routing.base import PlainRouteRequest, PlainRoutingPolicy, RouteDecision


class RoundRobinRouting(PlainRoutingPolicy):
    name = "round_robin"

    def __init__(self) -> None:
        self._turns = itertools.count()

    def choose(self, request: PlainRouteRequest, loads: Mapping[ReplicaId, int]) -> RouteDecision:
        if not loads:
            raise ValueError("no replica to route to")
        names = sorted(loads)
        return RouteDecision(names[next(self._turns) % len(names)], self.name, "next in turn")
