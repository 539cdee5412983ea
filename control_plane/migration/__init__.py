"""Migration policy: when and what to move (plans), and the steps of one move (MigrationJob)."""

from control_plane.migration.admin_move import plan_admin_move
from control_plane.migration.death import plan_replica_death, surviving_copy
from control_plane.migration.drain import plan_drain
from control_plane.migration.job import MigrationJob, MigrationStep, StepResult, TERMINAL_STEPS
from control_plane.migration.orphans import is_orphan, plan_orphan_rebuilds
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.pressure import plan_pressure_relief
from control_plane.migration.targets import TargetPicker
from control_plane.migration.victims import VICTIM_ORDERS, largest_first, least_recently_used, victim_order

__all__ = [
    "MigrationJob", "MigrationMethod", "MigrationPlan", "MigrationReason", "MigrationStep", "StepResult",
    "TERMINAL_STEPS", "TargetPicker", "VICTIM_ORDERS", "is_orphan", "largest_first", "least_recently_used",
    "plan_admin_move", "plan_drain", "plan_orphan_rebuilds", "plan_pressure_relief", "plan_replica_death",
    "surviving_copy", "victim_order",
]
