"""Routing of plain requests (no session): which replica answers a prompt. Pure decisions, no Ray.

``prefix_affinity`` sends a prompt to the replica that holds its longest stored compressed prefix
(falling back to the least-loaded replica when none does, or when the holder is overloaded);
``round_robin`` is the baseline. The ingress (deployments/ingress/plain_router.py) feeds the policy the
prompt's block hashes and the replicas' in-flight requests, and carries the decision out.
"""

from control_plane.routing.base import PlainRouteRequest, PlainRoutingPolicy, RouteDecision, least_loaded_replica
from control_plane.routing.config import PlainRoutingConfig
from control_plane.routing.prefix_affinity import PrefixAffinityRouting
from control_plane.routing.prefix_locator import PrefixLocator
from control_plane.routing.registry import ROUTING_POLICIES, make_routing_policy
from control_plane.routing.round_robin import RoundRobinRouting
from control_plane.routing.text_blocks import text_block_hashes

__all__ = [
    "PlainRouteRequest", "PlainRoutingConfig", "PlainRoutingPolicy", "PrefixAffinityRouting", "PrefixLocator",
    "ROUTING_POLICIES", "RouteDecision", "RoundRobinRouting", "least_loaded_replica", "make_routing_policy",
    "text_block_hashes",
]
