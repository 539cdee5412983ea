"""Pressure relief: move sessions off replicas whose device tier is over the threshold."""

from __future__ import annotations

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.migration.victims import VictimOrder, victim_order
from control_plane.replica import ReplicaView
from control_plane.states import MOVABLE_STATES, SessionState


def plan_pressure_relief(view: ClusterView, config: ControlPlaneConfig,
                         limit: int | None = None) -> list[MigrationPlan]:
    """TRANSFER plans that bring every alive replica above ``pressure_threshold`` back down to
    ``pressure_target``, without pushing any target above ``pressure_target``.

    Pressure is measured on each replica's primary (fastest) tier. Only READY, unpinned sessions
    whose copy is in that tier are moved (moving anything else frees none of its bytes), in
    ``config.victim_order``. Bytes already leaving a
    replica (MIGRATING) count as relief; bytes already heading to a target count as reserved.
    Fullest replica first; at most ``limit`` (default ``max_migrations_per_tick``) plans.
    """
    limit = config.max_migrations_per_tick if limit is None else limit
    picker = TargetPicker(view, max_pressure=config.pressure_target)
    order = victim_order(config.victim_order)
    plans: list[MigrationPlan] = []
    over = [r for r in view.alive_replicas() if r.pressure() > config.pressure_threshold]
    for replica in sorted(over, key=lambda r: (-r.pressure(), r.replica_id)):
        plans.extend(_relieve(view, replica, config, picker, order, limit - len(plans)))
        if len(plans) >= limit:
            break
    return plans


def _relieve(view: ClusterView, replica: ReplicaView, config: ControlPlaneConfig, picker: TargetPicker,
             order: VictimOrder, budget: int) -> list[MigrationPlan]:
    owned = view.sessions_on(replica.replica_id)
    leaving_bytes = sum(r.stored_bytes for r in owned if r.state is SessionState.MIGRATING)
    tier = replica.primary_tier
    excess_bytes = replica.held_bytes.get(tier) - leaving_bytes - int(config.pressure_target * replica.capacity_bytes.get(tier))
    movable = [r for r in owned if r.state in MOVABLE_STATES and not r.pinned and r.tier is tier]
    plans: list[MigrationPlan] = []
    for record in order(movable):
        if excess_bytes <= 0 or len(plans) >= budget:
            break
        target = picker.pick(record.stored_bytes, exclude={replica.replica_id})
        if target is None:
            continue  # a smaller session may still fit somewhere
        plans.append(MigrationPlan(
            session_id=record.id, source=replica.replica_id, target=target.replica_id,
            reason=MigrationReason.PRESSURE, method=MigrationMethod.TRANSFER, stored_bytes=record.stored_bytes,
            source_tier=record.tier, free_source=True,
            detail=f"{replica.replica_id} at pressure {replica.pressure():.2f} > {config.pressure_threshold}",
        ))
        excess_bytes -= record.stored_bytes
    return plans
