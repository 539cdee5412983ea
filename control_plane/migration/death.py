"""Replica death: re-home every session of a dead replica, from a surviving copy or by re-prefill."""

from __future__ import annotations

from control_plane.cluster_view import ClusterView, PoolEntry
from control_plane.config import ControlPlaneConfig
from control_plane.ids import ReplicaId
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.replica import TIER_ORDER
from control_plane.session import SessionRecord
from control_plane.states import MOVABLE_STATES
from kvpool.handles import Tier


def plan_replica_death(view: ClusterView, replica_id: ReplicaId, config: ControlPlaneConfig,
                       limit: int | None = None) -> list[MigrationPlan]:
    """Plans for the READY/SPILLED sessions whose owner ``replica_id`` is dead.

    A surviving copy is used when one is known: an entry on another alive replica (any tier), or -
    with ``disk_copies_survive_replica_death`` - the dead replica's own disk-tier entry, sent to a
    target on the same node when one has room. Otherwise the session is REBUILT by re-prefilling its
    stored context. Loading sessions are left to the caller of the load (it sees the failure);
    migrating and rebuilding ones to their job. Sessions no target has room for are left for the
    next call. Raises UnknownReplica.
    """
    dead = view.replica(replica_id)
    limit = config.max_migrations_per_tick if limit is None else limit
    picker = TargetPicker(view, max_pressure=config.pressure_threshold, allow_spill=True)
    plans: list[MigrationPlan] = []
    orphans = [r for r in view.sessions_on(replica_id) if r.state in MOVABLE_STATES]
    for record in sorted(orphans, key=lambda r: (-r.last_used_s, r.id)):
        if len(plans) >= limit:
            break
        copy = surviving_copy(view, record, replica_id, config)
        prefer_node = dead.node if copy is not None and copy.replica_id == replica_id else None
        target = picker.pick(record.stored_bytes, exclude={replica_id}, prefer_node=prefer_node)
        if target is None:
            continue
        if copy is None:
            plans.append(MigrationPlan(
                session_id=record.id, source=replica_id, target=target.replica_id,
                reason=MigrationReason.REPLICA_DEAD, method=MigrationMethod.REBUILD, stored_bytes=record.stored_bytes,
                detail=f"{replica_id} is dead and no copy survives; re-prefill the stored context",
            ))
        else:
            plans.append(MigrationPlan(
                session_id=record.id, source=copy.replica_id, target=target.replica_id,
                reason=MigrationReason.REPLICA_DEAD, method=MigrationMethod.TRANSFER, stored_bytes=copy.stored_bytes,
                source_tier=copy.tier, free_source=copy.replica_id != replica_id,
                detail=f"{replica_id} is dead; copy from {copy.replica_id} ({copy.tier.value})",
            ))
    return plans


def surviving_copy(view: ClusterView, record: SessionRecord, dead_replica: ReplicaId,
                   config: ControlPlaneConfig) -> PoolEntry | None:
    """A usable copy of ``record`` after ``dead_replica`` died: on an alive replica (fastest tier
    first), else the dead replica's disk entry if disk copies survive; None if neither exists."""
    entries = view.copies_of(record.id)
    alive = [e for e in entries if e.replica_id != dead_replica and view.replica(e.replica_id).alive]
    if alive:
        return min(alive, key=lambda e: (TIER_ORDER.index(e.tier), e.replica_id))
    if config.disk_copies_survive_replica_death:
        return next((e for e in entries if e.replica_id == dead_replica and e.tier is Tier.DISK), None)
    return None
