"""Config modules name policies with a ``Literal`` instead of importing the registries that
implement them (no import circle); these tests keep each ``Literal`` equal to its registry."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError

from control_plane.config import ControlPlaneConfig, PlacementPolicyName, VictimOrderName
from control_plane.migration.victims import VICTIM_ORDERS
from control_plane.placement.registry import PLACEMENT_POLICIES
from control_plane.routing.config import PlainRoutingConfig, RoutingPolicyName
from control_plane.routing.registry import ROUTING_POLICIES


@pytest.mark.parametrize("names, registry", [(PlacementPolicyName, PLACEMENT_POLICIES),
                                             (VictimOrderName, VICTIM_ORDERS),
                                             (RoutingPolicyName, ROUTING_POLICIES)])
def test_config_names_equal_the_registry(names, registry):
    assert sorted(get_args(names)) == sorted(registry)


@pytest.mark.parametrize("field", ["placement_policy", "affinity_fallback", "victim_order"])
def test_unregistered_name_is_an_error_naming_field_and_choices(field):
    with pytest.raises(ValidationError, match=rf"{field}='nearest' is not registered; choose one of: "):
        ControlPlaneConfig(**{field: "nearest"})


def test_unknown_routing_policy_lists_the_choices():
    with pytest.raises(ValidationError, match="unknown routing policy 'nearest'; choose one of: prefix_affinity, "
                                             "round_robin"):
        PlainRoutingConfig(policy="nearest")
