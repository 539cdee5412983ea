"""What the control plane knows about one replica: tiers, bytes, queue, liveness.

``ReplicaStats`` is the heartbeat payload a replica sends; ``ReplicaView`` is the immutable
snapshot the policies read. Neither talks to a replica: the Serve shell feeds them in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import PoolEventError
from control_plane.ids import NodeId, ReplicaId


class Tier(str, Enum):
    """Where a KV pool holds a cache, fastest first."""

    DEVICE = "device"
    HOST = "host"
    DISK = "disk"

    @classmethod
    def parse(cls, value: "Tier | str") -> "Tier":
        """Accept a Tier, its value, or a common alias (gpu/cuda/accelerator, cpu); else PoolEventError."""
        if isinstance(value, Tier):
            return value
        raw = str(getattr(value, "value", value)).lower()
        tier = _TIER_ALIASES.get(raw)
        if tier is None:
            raise PoolEventError(f"unknown tier {value!r}; expected one of {sorted(_TIER_ALIASES)}")
        return tier


_TIER_ALIASES: Mapping[str, Tier] = MappingProxyType({
    "device": Tier.DEVICE, "gpu": Tier.DEVICE, "cuda": Tier.DEVICE, "accelerator": Tier.DEVICE,
    "host": Tier.HOST, "cpu": Tier.HOST, "disk": Tier.DISK,
})


@dataclass(frozen=True)
class TierBytes:
    """A byte count per tier (capacity or bytes held)."""

    device: int = 0
    host: int = 0
    disk: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[Tier | str, int]) -> "TierBytes":
        return cls(**{Tier.parse(tier).value: int(n) for tier, n in values.items()})

    def get(self, tier: Tier) -> int:
        return getattr(self, tier.value)

    def plus(self, tier: Tier, delta_bytes: int) -> "TierBytes":
        """Return a copy with ``delta_bytes`` added to ``tier`` (never below zero)."""
        return replace(self, **{tier.value: max(0, self.get(tier) + delta_bytes)})

    @property
    def total(self) -> int:
        return self.device + self.host + self.disk


class ReplicaStats(BaseModel):
    """Heartbeat payload. ``held_bytes``, when sent, is the pool's own count and overrides the
    control plane's running sum of pool events (it also covers prefix-cache entries that have no
    session)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: NodeId
    capacity_bytes: dict[Tier, int] = Field(default_factory=dict)
    held_bytes: dict[Tier, int] | None = None
    queue_depth: int = Field(default=0, ge=0)
    draining: bool = False


@dataclass(frozen=True)
class ReplicaView:
    """Immutable snapshot of one replica, as placement and migration policies see it."""

    replica_id: ReplicaId
    node: NodeId
    alive: bool
    last_heartbeat_s: float
    capacity_bytes: TierBytes
    held_bytes: TierBytes
    queue_depth: int = 0
    draining: bool = False

    @property
    def accepts_sessions(self) -> bool:
        """Alive and not draining: may receive new sessions and migrations."""
        return self.alive and not self.draining

    def free_bytes(self, tier: Tier = Tier.DEVICE) -> int:
        """Capacity minus bytes held in ``tier`` (zero when over budget)."""
        return max(0, self.capacity_bytes.get(tier) - self.held_bytes.get(tier))

    def free_bytes_total(self) -> int:
        """Free bytes summed over every tier (what the pool can absorb by spilling)."""
        return sum(self.free_bytes(tier) for tier in Tier)

    def pressure(self, extra_device_bytes: int = 0) -> float:
        """Device bytes held (plus ``extra_device_bytes``) over device capacity.

        1.0 means full. A replica without device capacity reports 0.0 when empty, else inf.
        """
        held = self.held_bytes.device + extra_device_bytes
        capacity = self.capacity_bytes.device
        if capacity <= 0:
            return 0.0 if held <= 0 else float("inf")
        return held / capacity
