"""RecoveryRunner: carries out the recovery queue's plans (control_plane.recovery_queue).

The queue decides which lost session comes back next, where, and whether from its durable copy
or by re-prefilling; this class starts those plans as concurrent migration jobs (MigrationRunner
performs the steps: the PREFILL step reads the durable copy back first when the plan says so),
reports their ends to the queue, and lets requests wait for the session they ask for.

Live work, per replica, is what the heartbeat reports (loads + decodes in flight) minus the
re-prefills this runner itself started there: background recoveries only go where it is zero.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from control_plane.control_plane import ControlPlane
from control_plane.ids import ReplicaId, SessionId
from control_plane.migration import MigrationPlan
from control_plane.states import SessionState
from deployments.control.migration_runner import MigrationRunner

log = logging.getLogger(__name__)
_POLL_S = 0.1


class RecoveryRunner:
    def __init__(self, cp: ControlPlane, migrations: MigrationRunner) -> None:
        self.cp, self.migrations = cp, migrations
        self.live_work: dict[ReplicaId, int] = {}
        self._rebuilding_on: Counter[ReplicaId] = Counter()
        self._tasks: set[asyncio.Task] = set()

    def note_heartbeat(self, replica_id: ReplicaId, beat: dict[str, Any]) -> None:
        """Record the replica's live work from its heartbeat (our own re-prefills excluded)."""
        ours = self._rebuilding_on[replica_id]
        self.live_work[replica_id] = max(0, beat.get("loads_in_flight", 0) - ours) + beat.get("streams_in_flight", 0)

    def pump(self) -> int:
        """Start every plan the queue allows now; returns how many started."""
        plans = self.cp.recovery.next_plans(self.cp.view, self.cp.config, self.live_work, self.cp.jobs.has)
        for plan in plans:
            task = asyncio.get_running_loop().create_task(self._run(plan))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(plans)

    async def _run(self, plan: MigrationPlan) -> None:
        start = time.perf_counter()
        if not plan.read_persisted:
            self._rebuilding_on[plan.target] += 1
        outcome = "failed"
        try:
            summary = await self.migrations.run(plan)
            if summary["step"] == "done":
                outcome = self.migrations.recovered_by.pop(plan.session_id, "rebuild")
        except Exception:  # the job could not start (e.g. the session was deleted meanwhile): logged
            log.exception("recovery of session=%s failed to run", plan.session_id)
        finally:
            if not plan.read_persisted:
                self._rebuilding_on[plan.target] -= 1
            reason = self.migrations.read_fallbacks.pop(plan.session_id, None)
            if reason is not None:
                self.cp.recovery.note_fallback(reason)
            elapsed_s = time.perf_counter() - start
            self.cp.recovery.finished(plan.session_id, outcome, elapsed_s)
            log.info("recovery session=%s %s on %s in %.2f s", plan.session_id, outcome, plan.target, elapsed_s)
            self.pump()

    async def wait_for(self, session_id: SessionId, timeout_s: float) -> bool:
        """Put ``session_id`` first in the queue (if it is lost) and wait until it is servable again,
        at most ``timeout_s``. True when it is; False on timeout or if it is not recovering."""
        deadline = time.monotonic() + timeout_s
        while True:
            record = self.cp.view.find_session(session_id)
            if record is None or record.state in (SessionState.FAILED, SessionState.LOADING, SessionState.DELETED):
                return False
            if record.servable and self._alive(record.replica):
                return True
            if self.cp.recovery.demand_orphan(self.cp.view, session_id, self.cp.jobs.has):
                self.pump()
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)

    def _alive(self, replica_id: ReplicaId | None) -> bool:
        replica = self.cp.view.find_replica(replica_id) if replica_id else None
        return replica is not None and replica.alive

    def snapshot(self) -> dict[str, Any]:
        return self.cp.recovery.snapshot() | {"live_work": dict(self.live_work)}
