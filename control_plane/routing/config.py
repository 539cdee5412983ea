"""PlainRoutingConfig: how plain requests pick a replica (``AppConfig.plain.routing``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PlainRoutingConfig(BaseModel):
    """- ``policy``: ``prefix_affinity`` (default) or ``round_robin``.
    - ``block_chars``: characters per block of the prompt-prefix hash chain (the unit of a match).
    - ``max_imbalance``: the prefix holder is skipped when it has more than this many in-flight
      requests above the least-loaded replica (the load bound; Ray Serve's
      PrefixCacheAffinityRouter calls it ``imbalanced_threshold``).
    - ``max_blocks``: block hashes remembered (least recently used forgotten first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = "prefix_affinity"
    block_chars: int = Field(default=256, ge=16)
    max_imbalance: int = Field(default=4, ge=0)
    max_blocks: int = Field(default=200_000, ge=1)

    @field_validator("policy")
    @classmethod
    def _known(cls, name: str) -> str:
        from control_plane.routing.registry import ROUTING_POLICIES

        if name not in ROUTING_POLICIES:
            raise ValueError(f"unknown routing policy {name!r}; choose one of: {', '.join(sorted(ROUTING_POLICIES))}")
        return name
