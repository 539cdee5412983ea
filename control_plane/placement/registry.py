"""Placement policies by name. Adding one = one new file + one line here."""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Mapping

from control_plane.errors import UnknownPolicy
from control_plane.placement.affinity import AffinityPlacement
from control_plane.placement.base import PlacementPolicy
from control_plane.placement.least_bytes import LeastBytesPlacement
from control_plane.placement.power_of_two import PowerOfTwoPlacement

if TYPE_CHECKING:
    from control_plane.config import ControlPlaneConfig

PolicyFactory = Callable[["ControlPlaneConfig", random.Random], PlacementPolicy]

PLACEMENT_POLICIES: Mapping[str, PolicyFactory] = MappingProxyType({
    "least_bytes": lambda config, rng: LeastBytesPlacement(),
    "power_of_two": lambda config, rng: PowerOfTwoPlacement(rng),
    "affinity": lambda config, rng: AffinityPlacement(
        make_placement_policy(config.affinity_fallback, config, rng), max_pressure=config.affinity_max_pressure),
})


def make_placement_policy(name: str, config: "ControlPlaneConfig",
                          rng: random.Random | None = None) -> PlacementPolicy:
    """Build the policy registered as ``name``; ``rng`` defaults to one seeded by
    ``config.placement_seed``. Raises UnknownPolicy listing the registered names."""
    factory = PLACEMENT_POLICIES.get(name)
    if factory is None:
        raise UnknownPolicy("placement policy", name, list(PLACEMENT_POLICIES))
    return factory(config, rng or random.Random(config.placement_seed))
