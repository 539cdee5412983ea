"""ControlPlaneConfig: every control-plane setting, one closed pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

PlacementPolicyName = Literal["least_bytes", "power_of_two", "affinity"]
VictimOrderName = Literal["lru", "largest"]
"""The names control_plane.placement.registry and control_plane.migration.victims register (a unit
test keeps them equal), so this config never imports the policies it names."""


class RecoveryConfig(BaseModel):
    """How sessions that lost their cache (restart, dead actor, eviction) come back
    (control_plane.recovery_queue, docs/durability.md).

    - ``max_concurrent``: background recoveries running at once, fleet-wide; they start only on
      replicas with no live loads or decodes.
    - ``max_concurrent_demanded``: further slots for sessions a request is waiting for; those
      start at once, live traffic or not.
    - ``max_wait_s``: how long a request for a recovering session waits for it before a 409 with
      ``Retry-After`` (keep it below ``limits.request_timeout_s``).
    - ``read_estimate_s`` / ``rebuild_estimate_s``: first guesses of one read-back / one re-prefill,
      replaced by measured averages once recoveries have run (they feed ``Retry-After``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_concurrent: int = Field(default=2, ge=1)
    max_concurrent_demanded: int = Field(default=4, ge=1)
    max_wait_s: float = Field(default=60.0, gt=0)
    read_estimate_s: float = Field(default=0.5, gt=0)
    rebuild_estimate_s: float = Field(default=20.0, gt=0)


class ControlPlaneConfig(BaseModel):
    """Settings of the control plane; ``AppConfig`` composes it. Unknown keys are an error.

    - ``store`` / ``store_path``: durable store backend (``sqlite`` or ``memory``) and its file (a
      path on the head node or a mounted volume on Kubernetes).
    - ``sqlite_synchronous``: ``NORMAL`` survives a killed process (WAL); ``FULL`` also a power cut.
    - ``placement_policy``: ``least_bytes``, ``power_of_two`` or ``affinity`` (which falls back to
      ``affinity_fallback`` when no replica shares the owner or context); ``placement_seed`` makes
      randomised policies reproducible.
    - ``pressure_threshold`` / ``pressure_target``: a replica whose device bytes exceed
      threshold x capacity sheds sessions until it is at or below target x capacity; migration
      targets are only filled up to the target.
    - ``victim_order``: which sessions leave an over-full replica first (``lru`` or ``largest``).
    - ``migration_retries``: failed transfer attempts retried before falling back to a re-prefill.
    - ``max_migrations_per_tick``: cap on plans one ``tick`` returns (bounds the burst of transfers).
    - ``heartbeat_timeout_s``: a replica silent this long is declared dead.
    - ``default_ttl_s``: idle TTL of sessions created without one (None: never expire).
    - ``transient_timeout_s``: a session unchanged this long in LOADING, MIGRATING or REBUILDING
      without a job driving it is repaired by the tick (control_plane.transient_sweep); keep it
      above the ingress's ``limits.load_timeout_s``.
    - ``recovery``: order and concurrency of recoveries (RecoveryConfig).
    - ``disk_copies_survive_replica_death``: a dead replica's disk-tier entries are readable
      (node-local disk or shared volume) and are transferred instead of re-prefilled.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Literal["sqlite", "memory"] = "sqlite"
    store_path: Path = Path("kvfleet-control.sqlite3")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    sqlite_busy_timeout_s: float = Field(default=5.0, gt=0)
    placement_policy: PlacementPolicyName = "power_of_two"
    affinity_fallback: PlacementPolicyName = "power_of_two"
    affinity_max_pressure: float = Field(default=0.9, gt=0)
    placement_seed: int | None = None
    pressure_threshold: float = Field(default=0.9, gt=0)
    pressure_target: float = Field(default=0.75, gt=0)
    victim_order: VictimOrderName = "lru"
    migration_retries: int = Field(default=2, ge=0)
    max_migrations_per_tick: int = Field(default=64, ge=1)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0)
    default_ttl_s: float | None = Field(default=3600.0, gt=0)
    disk_copies_survive_replica_death: bool = True
    transient_timeout_s: float = Field(default=1200.0, gt=0)
    recovery: RecoveryConfig = RecoveryConfig()

    @field_validator("placement_policy", "affinity_fallback", "victim_order", mode="before")
    @classmethod
    def _registered(cls, value: object, info: ValidationInfo) -> object:
        field = info.field_name
        valid = get_args(VictimOrderName if field == "victim_order" else PlacementPolicyName)
        if value not in valid:
            raise ValueError(f"{field}={value!r} is not registered; choose one of: {', '.join(sorted(valid))}")
        return value

    @model_validator(mode="after")
    def _marks(self) -> "ControlPlaneConfig":
        if self.affinity_fallback == "affinity":
            raise ValueError("affinity_fallback cannot be 'affinity' itself; choose least_bytes or power_of_two")
        if self.pressure_target > self.pressure_threshold:
            raise ValueError(f"pressure_target ({self.pressure_target}) must be <= pressure_threshold "
                             f"({self.pressure_threshold})")
        return self

