"""Plain-request routing policies by name. Adding one = one new file + one line here."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Mapping

from control_plane.errors import UnknownPolicy
from control_plane.routing.base import PlainRoutingPolicy
from control_plane.routing.prefix_affinity import PrefixAffinityRouting
from control_plane.routing.prefix_locator import PrefixLocator
from control_plane.routing.round_robin import RoundRobinRouting

if TYPE_CHECKING:
    from control_plane.routing.config import PlainRoutingConfig

ROUTING_POLICIES: Mapping[str, Callable[["PlainRoutingConfig"], PlainRoutingPolicy]] = MappingProxyType({
    "prefix_affinity": lambda config: PrefixAffinityRouting(PrefixLocator(config.max_blocks), config.max_imbalance),
    "round_robin": lambda config: RoundRobinRouting(),
})


def make_routing_policy(config: "PlainRoutingConfig") -> PlainRoutingPolicy:
    """The policy ``config.policy`` names; UnknownPolicy listing the registered names otherwise."""
    factory = ROUTING_POLICIES.get(config.policy)
    if factory is None:
        raise UnknownPolicy("routing policy", config.policy, list(ROUTING_POLICIES))
    return factory(config)
