"""Drain: move every session off a replica so it can be stopped or upgraded."""

from __future__ import annotations

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig
from control_plane.ids import ReplicaId
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.states import MOVABLE_STATES


def plan_drain(view: ClusterView, replica_id: ReplicaId, config: ControlPlaneConfig,
               limit: int | None = None) -> list[MigrationPlan]:
    """TRANSFER plans for the READY/SPILLED sessions on ``replica_id`` (pinned ones too).

    Targets are filled up to ``pressure_threshold``, then onto any replica with free bytes in some
    tier. Sessions that are loading, migrating or rebuilding are left for a later call (their job
    finishes first); sessions for which no target has room are left too. Call again (each tick)
    until ``view.session_count(replica_id) == 0``. Raises UnknownReplica.
    """
    replica = view.replica(replica_id)
    limit = config.max_migrations_per_tick if limit is None else limit
    picker = TargetPicker(view, max_pressure=config.pressure_threshold, allow_spill=True)
    plans: list[MigrationPlan] = []
    movable = [r for r in view.sessions_on(replica_id) if r.state in MOVABLE_STATES]
    for record in sorted(movable, key=lambda r: (-r.last_used_s, r.id)):  # hottest first: least disruption
        if len(plans) >= limit:
            break
        target = picker.pick(record.stored_bytes, exclude={replica_id})
        if target is None:
            continue
        plans.append(MigrationPlan(
            session_id=record.id, source=replica_id, target=target.replica_id, reason=MigrationReason.DRAIN,
            method=MigrationMethod.TRANSFER, stored_bytes=record.stored_bytes, source_tier=record.tier,
            free_source=replica.alive, detail=f"draining {replica_id}",
        ))
    return plans
