"""Orphans: sessions that lost every copy (pool eviction, interrupted load or rebuild) and have no
rebuild under way. They are re-prefilled from their durable context."""

from __future__ import annotations

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.session import SessionRecord
from control_plane.states import SessionState


def is_orphan(view: ClusterView, record: SessionRecord) -> bool:
    """REBUILDING with no target, or with a target that is gone or dead."""
    if record.state is not SessionState.REBUILDING:
        return False
    if record.target_replica is None:
        return True
    target = view.find_replica(record.target_replica)
    return target is None or not target.alive


def plan_orphan_rebuilds(view: ClusterView, config: ControlPlaneConfig,
                         limit: int | None = None) -> list[MigrationPlan]:
    """REBUILD plans for every orphan (see ``is_orphan``), most recently used first; orphans no
    replica has room for are left for the next call."""
    limit = config.max_migrations_per_tick if limit is None else limit
    picker = TargetPicker(view, max_pressure=config.pressure_threshold, allow_spill=True)
    plans: list[MigrationPlan] = []
    orphans = [r for r in view.sessions() if is_orphan(view, r)]
    for record in sorted(orphans, key=lambda r: (-r.last_used_s, r.id)):
        if len(plans) >= limit:
            break
        target = picker.pick(record.stored_bytes)
        if target is None:
            continue
        plans.append(MigrationPlan(
            session_id=record.id, source=None, target=target.replica_id, reason=MigrationReason.COPY_LOST,
            method=MigrationMethod.REBUILD, stored_bytes=record.stored_bytes,
            detail="no copy of the cache is left; re-prefill the stored context",
        ))
    return plans
