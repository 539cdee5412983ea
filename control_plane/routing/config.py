"""PlainRoutingConfig: how plain requests pick a replica (``AppConfig.plain.routing``)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

RoutingPolicyName = Literal["prefix_affinity", "round_robin"]
"""The names control_plane.routing.registry registers (a unit test keeps the two equal), so this
config never imports the policies it names."""


class PlainRoutingConfig(BaseModel):
    """- ``policy``: ``prefix_affinity`` (default) or ``round_robin``.
    - ``block_chars``: characters per block of the prompt-prefix hash chain (the unit of a match).
    - ``max_imbalance``: the prefix holder is skipped when it has more than this many in-flight
      requests above the least-loaded replica (the load bound; Ray Serve's
      PrefixCacheAffinityRouter calls it ``imbalanced_threshold``).
    - ``max_blocks``: block hashes remembered (least recently used forgotten first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: RoutingPolicyName = "prefix_affinity"
    block_chars: int = Field(default=256, ge=16)
    max_imbalance: int = Field(default=4, ge=0)
    max_blocks: int = Field(default=200_000, ge=1)

    @field_validator("policy", mode="before")
    @classmethod
    def _known(cls, name: object) -> object:
        names = get_args(RoutingPolicyName)
        if name not in names:
            raise ValueError(f"unknown routing policy {name!r}; choose one of: {', '.join(sorted(names))}")
        return name
