"""The migrations one control-plane tick starts: every policy's plans, in priority order, within a limit."""

from __future__ import annotations

from typing import Callable

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig
from control_plane.ids import SessionId
from control_plane.migration.death import plan_replica_death
from control_plane.migration.drain import plan_drain
from control_plane.migration.orphans import plan_orphan_rebuilds
from control_plane.migration.plan import MigrationPlan
from control_plane.migration.pressure import plan_pressure_relief


def plan_tick_migrations(view: ClusterView, config: ControlPlaneConfig,
                         busy: Callable[[SessionId], bool]) -> list[MigrationPlan]:
    """At most ``config.max_migrations_per_tick`` plans, one per session, none for a session that
    ``busy`` says already has a migration job. Priority: dead replicas' sessions, orphans to
    rebuild, draining replicas, then pressure relief."""
    limit = config.max_migrations_per_tick
    planners = [lambda n, r=r: plan_replica_death(view, r.replica_id, config, n)
                for r in view.replicas() if not r.alive and view.session_count(r.replica_id)]
    planners.append(lambda n: plan_orphan_rebuilds(view, config, n))
    planners += [lambda n, r=r: plan_drain(view, r.replica_id, config, n)
                 for r in view.alive_replicas() if r.draining and view.session_count(r.replica_id)]
    planners.append(lambda n: plan_pressure_relief(view, config, n))
    plans: list[MigrationPlan] = []
    planned: set[SessionId] = set()
    for planner in planners:
        if len(plans) >= limit:
            break
        for plan in planner(limit - len(plans)):
            if plan.session_id not in planned and not busy(plan.session_id):
                planned.add(plan.session_id)
                plans.append(plan)
    return plans
