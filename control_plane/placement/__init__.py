"""Placement policies: which replica takes a session. Pure decisions over a ClusterView."""

from control_plane.placement.affinity import AffinityPlacement
from control_plane.placement.base import (
    PlacementDecision, PlacementPolicy, PlacementRequest, eligible_replicas, least_loaded,
)
from control_plane.placement.least_bytes import LeastBytesPlacement
from control_plane.placement.power_of_two import PowerOfTwoPlacement
from control_plane.placement.registry import PLACEMENT_POLICIES, make_placement_policy

__all__ = [
    "AffinityPlacement", "LeastBytesPlacement", "PLACEMENT_POLICIES", "PlacementDecision", "PlacementPolicy",
    "PlacementRequest", "PowerOfTwoPlacement", "eligible_replicas", "least_loaded", "make_placement_policy",
]
