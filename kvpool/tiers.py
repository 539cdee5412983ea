"""Per-tier bookkeeping of a KVPool: budget, bytes held, members. Pure accounting, no tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from kvpool.config import KVPoolConfig
from kvpool.errors import PoolConfigError
from kvpool.handles import KVHandle, Tier
from kvpool.sizes import format_bytes


@dataclass
class TierState:
    """``device`` is where a memory tier keeps tensors (None for the disk tier)."""

    tier: Tier
    budget_bytes: int
    device: torch.device | None
    held_bytes: int = 0
    members: dict[KVHandle, int] = field(default_factory=dict)  # handle -> bytes counted here

    @property
    def free_bytes(self) -> int:
        return self.budget_bytes - self.held_bytes

    def add(self, handle: KVHandle, nbytes: int) -> None:
        """Count ``nbytes`` for ``handle``. Callers make room first; exceeding the budget is a kvpool bug."""
        if nbytes > self.free_bytes:
            raise RuntimeError(f"kvpool bug: {self.tier} tier asked to hold {nbytes} bytes with {self.free_bytes} "
                               "free; please report it")
        self.members[handle] = nbytes
        self.held_bytes += nbytes

    def remove(self, handle: KVHandle) -> None:
        self.held_bytes -= self.members.pop(handle)

    def usage(self, pinned_bytes: int) -> dict[str, Any]:
        return {"budget_bytes": self.budget_bytes, "held_bytes": self.held_bytes, "free_bytes": self.free_bytes,
                "entries": len(self.members), "pinned_bytes": pinned_bytes}

    def describe(self, pinned_bytes: int) -> str:
        return (f"{self.tier}: {format_bytes(self.free_bytes)} free of {format_bytes(self.budget_bytes)}, "
                f"{format_bytes(pinned_bytes)} pinned")


def build_tiers(config: KVPoolConfig) -> list[TierState]:
    """The configured tiers, fastest first. Raises PoolConfigError for a CUDA tier without CUDA."""
    tiers = []
    if config.device is not None:
        if not torch.cuda.is_available():
            raise PoolConfigError(f"device {config.device!r} is configured but CUDA is not available here; "
                                  "unset device and device_budget_bytes to keep caches in host memory")
        tiers.append(TierState(Tier.DEVICE, config.device_budget_bytes, torch.device(config.device)))
    tiers.append(TierState(Tier.HOST, config.host_budget_bytes, torch.device("cpu")))
    if config.disk_dir is not None:
        tiers.append(TierState(Tier.DISK, config.disk_budget_bytes, None))
    return tiers
