"""What the control plane knows about one replica: tiers, bytes, queue, liveness.

``ReplicaStats`` is the heartbeat payload a replica sends; ``ReplicaView`` is the immutable
snapshot the policies read. Neither talks to a replica: the Serve shell feeds them in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import PoolEventError
from control_plane.ids import NodeId, ReplicaId
from control_plane.states import SessionState
from kvpool.handles import Tier


TIER_ORDER: tuple[Tier, ...] = (Tier.DEVICE, Tier.HOST, Tier.DISK)
"""Tiers fastest first (kvpool's Tier)."""

_TIER_ALIASES: Mapping[str, Tier] = MappingProxyType({
    "device": Tier.DEVICE, "gpu": Tier.DEVICE, "cuda": Tier.DEVICE, "accelerator": Tier.DEVICE,
    "host": Tier.HOST, "cpu": Tier.HOST, "disk": Tier.DISK,
})


def parse_tier(value: object) -> Tier:
    """A Tier from a Tier, any enum with a tier value, or a name/alias (gpu, cuda, cpu ...);
    PoolEventError lists the accepted names."""
    if isinstance(value, Tier):
        return value
    tier = _TIER_ALIASES.get(str(getattr(value, "value", value)).lower())
    if tier is None:
        raise PoolEventError(f"unknown tier {value!r}; expected one of {sorted(_TIER_ALIASES)}")
    return tier


def resting_state(tier: Tier | None, primary_tier: Tier | None) -> SessionState:
    """READY when a copy sits in its replica's fastest tier, SPILLED when it sits lower.

    With the replica unknown (``primary_tier`` None), host or device counts as READY.
    """
    if tier is None:
        raise ValueError("a session without a copy has no resting state")
    if primary_tier is None:
        return SessionState.SPILLED if tier is Tier.DISK else SessionState.READY
    return SessionState.READY if TIER_ORDER.index(tier) <= TIER_ORDER.index(primary_tier) else SessionState.SPILLED


@dataclass(frozen=True)
class TierBytes:
    """A byte count per tier (capacity or bytes held)."""

    device: int = 0
    host: int = 0
    disk: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[Tier | str, int]) -> "TierBytes":
        return cls(**{parse_tier(tier).value: int(n) for tier, n in values.items()})

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
    restarting: bool = False  # its model actors are being restarted: new work waits there

    @property
    def accepts_sessions(self) -> bool:
        """Alive and not draining: may receive new sessions and migrations."""
        return self.alive and not self.draining

    @property
    def primary_tier(self) -> Tier:
        """The fastest tier this replica has (device on GPU replicas, host on CPU ones): where new
        caches land and what pressure is measured on."""
        return next((tier for tier in TIER_ORDER if self.capacity_bytes.get(tier) > 0), Tier.HOST)

    def free_bytes(self, tier: Tier | None = None) -> int:
        """Capacity minus bytes held in ``tier`` (default: the primary tier); zero when over budget."""
        tier = tier or self.primary_tier
        return max(0, self.capacity_bytes.get(tier) - self.held_bytes.get(tier))

    def free_bytes_total(self) -> int:
        """Free bytes summed over every tier (what the pool can absorb by spilling)."""
        return sum(self.free_bytes(tier) for tier in TIER_ORDER)

    def pressure(self, extra_bytes: int = 0) -> float:
        """Bytes held in the primary tier (plus ``extra_bytes``) over its capacity; 1.0 is full.

        A replica without capacity reports 0.0 when empty, else inf.
        """
        tier = self.primary_tier
        held, capacity = self.held_bytes.get(tier) + extra_bytes, self.capacity_bytes.get(tier)
        if capacity <= 0:
            return 0.0 if held <= 0 else float("inf")
        return held / capacity
