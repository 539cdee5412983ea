"""deployments.control.recovery_runner without Ray: a fake MigrationRunner stands in for the replica
calls; the real ControlPlane, RecoveryQueue and MigrationJobs decide. A request waiting for a lost
session gets it back first, concurrency stays bounded, a failed read-back is counted."""

from __future__ import annotations

import asyncio

from control_plane import ControlPlane, ReplicaId, SessionId, SessionState
from control_plane.config import RecoveryConfig
from control_plane.migration.job import MigrationStep, StepResult
from deployments.control.recovery_runner import RecoveryRunner
from tests.unit.control_plane.cp_factories import config, record, stats


class FakeMigrations:
    """Carries jobs out like MigrationRunner.run: PREFILL (read or re-prefill) then the flip."""

    def __init__(self, cp: ControlPlane, corrupt: set[str] = frozenset(), step_s: float = 0.05) -> None:
        self.cp, self.corrupt, self.step_s = cp, corrupt, step_s
        self.recovered_by: dict[str, str] = {}
        self.read_fallbacks: dict[str, str] = {}
        self.started: list[str] = []
        self.running = self.max_running = 0

    async def run(self, plan) -> dict:
        self.started.append(plan.session_id)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        job = self.cp.start_migration(plan)
        try:
            while not job.finished:
                step = job.next_step()
                await asyncio.sleep(self.step_s)
                if step is MigrationStep.PREFILL:
                    if plan.read_persisted and plan.session_id in self.corrupt:
                        self.read_fallbacks[plan.session_id] = "corrupt"
                        self.recovered_by[plan.session_id] = "rebuild"
                    else:
                        self.recovered_by[plan.session_id] = "read" if plan.read_persisted else "rebuild"
                job = self.cp.report_step(job.job_id, StepResult(step, ok=True))
        finally:
            self.running -= 1
        return job.summary()


def lost_fleet(n: int, **recovery) -> ControlPlane:
    cp = ControlPlane(config(recovery=RecoveryConfig(**{"max_concurrent": 2, "max_concurrent_demanded": 1,
                                                        **recovery})))
    cp.heartbeat(ReplicaId("r1"), stats())
    for i in range(n):
        cp.view.put_session(record(f"s{i}", state=SessionState.REBUILDING, replica=None, tier=None,
                                   last_used_s=float(i)))
    cp.recovery.note_persisted(ReplicaId("r1"), {f"s{i}": {"owner": None, "press": None} for i in range(n)})
    return cp


def test_asked_for_session_comes_back_first_and_concurrency_stays_bounded():
    async def scenario():
        cp = lost_fleet(8)
        migrations = FakeMigrations(cp, corrupt={"s3"})
        runner = RecoveryRunner(cp, migrations)
        cp.recovery.add_orphans(cp.view, cp.jobs.has)
        back = await runner.wait_for(SessionId("s0"), timeout_s=10)  # s0: least recently used, asked for
        assert back and cp.view.session(SessionId("s0")).state is SessionState.READY
        assert migrations.started[0] == "s0"
        runner.pump()
        for _ in range(200):
            if all(cp.view.session(SessionId(f"s{i}")).state is SessionState.READY for i in range(8)):
                break
            await asyncio.sleep(0.02)
        assert migrations.max_running <= 3  # 2 background + 1 demanded slot
        done = cp.recovery.snapshot()["done"]
        assert done == {"read": 7, "rebuild": 1, "read_fallback_corrupt": 1}, done
    asyncio.run(scenario())


def test_background_work_waits_for_live_traffic_but_a_request_does_not():
    async def scenario():
        cp = lost_fleet(3)
        migrations = FakeMigrations(cp)
        runner = RecoveryRunner(cp, migrations)
        runner.note_heartbeat(ReplicaId("r1"), {"loads_in_flight": 1, "streams_in_flight": 2})
        cp.recovery.add_orphans(cp.view, cp.jobs.has)
        assert runner.pump() == 0  # live work on the only replica: background waits
        assert await runner.wait_for(SessionId("s1"), timeout_s=10)
        assert migrations.started == ["s1"]
    asyncio.run(scenario())


def test_waiting_gives_up_after_the_timeout():
    async def scenario():
        cp = lost_fleet(1)
        cp.view.mark_dead(ReplicaId("r1"))  # nowhere to recover to
        runner = RecoveryRunner(cp, FakeMigrations(cp))
        assert not await runner.wait_for(SessionId("s0"), timeout_s=0.3)
        assert cp.recovery.estimate_s(SessionId("s0")) >= 0.5
    asyncio.run(scenario())
