"""prefix_affinity: route a plain prompt to the replica holding its longest stored prefix.

That replica's compressed-prefix index (kvpool.prefix_index) already holds the prompt's prefix, so
it prefills only the rest; any other replica would prefill all of it again. When no replica holds
any of it, or the holder has more than ``max_imbalance`` in-flight requests above the
least-loaded replica, the least-loaded replica takes it (and from then on holds that prefix).
The same idea as Ray Serve LLM's PrefixCacheAffinityRouter, SGLang's cache-aware router and
llm-d's prefix scorer, over kvfleet's compressed prefixes.
"""

from __future__ import annotations

import itertools
from typing import Mapping

from control_plane.ids import ReplicaId
from control_plane.routing.base import PlainRouteRequest, PlainRoutingPolicy, RouteDecision, least_loaded_replica
from control_plane.routing.prefix_locator import PrefixLocator


class PrefixAffinityRouting(PlainRoutingPolicy):
    name = "prefix_affinity"

    def __init__(self, locator: PrefixLocator | None = None, max_imbalance: int = 4) -> None:
        self.locator = locator or PrefixLocator()
        self.max_imbalance = max_imbalance
        self._turns = itertools.count()

    def choose(self, request: PlainRouteRequest, loads: Mapping[ReplicaId, int]) -> RouteDecision:
        least = least_loaded_replica(loads, next(self._turns))
        holders = {r: depth for r, depth in self.locator.longest(request.block_hashes).items() if r in loads}
        if not holders:
            return RouteDecision(least, self.name, "no replica holds a prefix of this prompt: least loaded")
        holder = min(holders, key=lambda r: (loads[r], r))
        depth = holders[holder]
        if loads[holder] > loads[least] + self.max_imbalance:
            return RouteDecision(least, self.name, f"prefix holder {holder} overloaded ({loads[holder]} in flight vs "
                                                   f"{loads[least]} on {least}): least loaded")
        return RouteDecision(holder, self.name, f"holds {depth} of {len(request.block_hashes)} prefix blocks", depth)

    def observe(self, request: PlainRouteRequest, decision: RouteDecision) -> None:
        self.locator.record(request.block_hashes, decision.replica_id)

    def forget_replica(self, replica_id: ReplicaId) -> None:
        self.locator.forget_replica(replica_id)
