"""ControlPlane end to end (no Ray): the calls the Serve shell makes, over a real SQLite store."""

from __future__ import annotations

import pytest

from control_plane import (
    AdminEventStatus, ControlPlane, ControlPlaneConfig, InvalidMigration, MigrationMethod, MigrationReason,
    NoReplicaAvailable, ReplicaId, SessionContext, SessionNotReady, SessionState, SQLiteSessionStore, Tier,
    UnknownAdminEvent, UnknownSession,
)
from control_plane.migration import MigrationStep, StepResult
from kvpool.press_spec import PressSpec

from cp_factories import MiB, PoolEvent, stats

R1, R2, R3 = ReplicaId("r1"), ReplicaId("r2"), ReplicaId("r3")
S = MigrationStep


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock():
    return Clock()


def make_cp(tmp_path, clock, **overrides) -> ControlPlane:
    settings = {"store_path": tmp_path / "cp.sqlite3", "placement_policy": "least_bytes", "heartbeat_timeout_s": 10.0,
                "default_ttl_s": 600.0, **overrides}
    return ControlPlane(ControlPlaneConfig(**settings), clock=clock)


def beat(cp: ControlPlane, *replicas: ReplicaId, **kwargs) -> None:
    for replica_id in replicas:
        cp.heartbeat(replica_id, stats(node=f"node-{replica_id}", **kwargs))


def load(cp: ControlPlane, text: str = "a long document", owner: str = "alice", mib: int = 10, **kwargs):
    """Open a session and play the shell: prefill on the chosen replica, pool stores it, mark loaded."""
    record, decision = cp.open_session(model="m", context=SessionContext(text=text), owner=owner,
                                       press=PressSpec(name="knorm", compression_ratio=0.5), **kwargs)
    cp.apply_pool_event(decision.replica_id, PoolEvent("stored", f"h-{record.id}", record.id, "device", mib * MiB))
    return cp.mark_loaded(record.id, read_tokens=1000, kept_tokens=500, stored_bytes=mib * MiB)


def run_job(cp: ControlPlane, plan, failures: dict[MigrationStep, int] | None = None, on_import=None):
    """Drive a job like the shell: every step succeeds unless scripted to fail; the target's pool
    reports the imported or prefilled copy."""
    failures = dict(failures or {})
    job = cp.start_migration(plan)
    while not job.finished:
        step = job.next_step()
        ok = failures.get(step, 0) <= 0
        failures[step] = failures.get(step, 0) - 1
        if ok and step in (S.IMPORT, S.PREFILL):
            cp.apply_pool_event(plan.target, PoolEvent("stored", f"t-{plan.session_id}", plan.session_id, "device",
                                                       plan.stored_bytes))
        if ok and step is S.FREE_SOURCE:
            cp.apply_pool_event(plan.source, PoolEvent("freed", f"h-{plan.session_id}", plan.session_id, "device",
                                                       plan.stored_bytes))
        job = cp.report_step(job.job_id, StepResult(step, ok, "scripted"))
    return job


def test_open_load_locate(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    ready = load(cp)
    assert ready.state is SessionState.READY and ready.kept_tokens == 500 and ready.ttl_s == 600.0
    assert cp.locate(ready.id, owner="alice") == ready.replica
    with pytest.raises(UnknownSession, match="this API key"):
        cp.locate(ready.id, owner="mallory")
    assert cp.store.get(ready.id).state is SessionState.READY


def test_nothing_is_stored_when_placement_fails(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    with pytest.raises(NoReplicaAvailable):
        cp.open_session(model="m", context=SessionContext(text="x"))
    assert cp.store.list() == []


def test_a_failed_load_is_recorded(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    record, _ = cp.open_session(model="m", context=SessionContext(token_ids=[1, 2, 3]))
    with pytest.raises(SessionNotReady, match="loading"):
        cp.locate(record.id)
    failed = cp.mark_load_failed(record.id, "context too long")
    assert failed.state is SessionState.FAILED and cp.store.get(record.id).failure == "context too long"


def test_a_load_whose_replica_lost_its_actors_is_placed_again_elsewhere(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    record, decision = cp.open_session(model="m", context=SessionContext(text="doc"))
    moved, again = cp.relocate_load(record.id, decision.replica_id)
    other = ({R1, R2} - {decision.replica_id}).pop()
    assert again.replica_id == other and moved.replica == other and moved.state is SessionState.LOADING
    assert cp.store.get(record.id).replica == other  # persisted before it is used
    assert cp.view.replica(decision.replica_id).restarting  # new loads avoid it until its next full heartbeat
    cp.mark_loaded(record.id, read_tokens=10, kept_tokens=10, stored_bytes=MiB)
    assert cp.locate(record.id) == other
    lone = make_cp(tmp_path / "lone", clock)
    beat(lone, R1)
    record, _ = lone.open_session(model="m", context=SessionContext(text="doc"))
    with pytest.raises(NoReplicaAvailable):
        lone.relocate_load(record.id, R1)  # nowhere else: the ingress marks the load failed (503)


def test_a_stored_turn_follows_its_parent_cache_when_it_moves(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    record, _ = cp.open_session(model="m", context=SessionContext(text="turn"), replica=R1)
    moved, decision = cp.relocate_load(record.id, R1, to=R1)  # the parent recovered where it was
    assert decision.replica_id == R1 and decision.policy == "chain" and moved.replica == R1
    moved, decision = cp.relocate_load(record.id, R1, to=R2)  # ... or on the other replica
    assert decision.replica_id == R2 and cp.store.get(record.id).replica == R2
    assert cp.view.replica(R1).restarting and moved.state is SessionState.LOADING


def test_ttl_expiry_deletes_and_lists_every_copy_to_free(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    old = load(cp, "old")
    clock.now_s += 300
    fresh = load(cp, "fresh")
    cp.apply_pool_event(R2 if old.replica == R1 else R1, PoolEvent("stored", "extra", old.id, "disk", MiB))
    clock.now_s += 301
    beat(cp, R1, R2)
    report = cp.tick()
    assert [r.id for r in report.expired] == [old.id] and report.expired[0].state is SessionState.DELETED
    assert sorted(e.handle for e in report.to_free) == sorted([f"h-{old.id}", "extra"])
    assert cp.store.get(old.id).state is SessionState.DELETED  # tombstone
    with pytest.raises(UnknownSession):
        cp.locate(old.id)
    assert cp.locate(fresh.id)


def test_locate_refreshes_the_ttl_durably(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    session = load(cp)
    clock.now_s += 500
    cp.locate(session.id)
    cp.flush()
    assert cp.store.get(session.id).last_used_s == clock.now_s
    clock.now_s += 500  # 1000 s after load, 500 after last use: still alive with a 600 s TTL
    beat(cp, R1)
    assert cp.tick().expired == []


def test_eviction_then_rebuild_on_the_next_tick(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    session = load(cp)
    lost = cp.apply_pool_event(session.replica, PoolEvent("evicted", f"h-{session.id}", session.id, "device", 10 * MiB))
    assert lost.state is SessionState.REBUILDING and cp.store.get(session.id).state is SessionState.REBUILDING
    plans = cp.tick().plans
    assert [(p.session_id, p.method, p.reason) for p in plans] == [
        (session.id, MigrationMethod.REBUILD, MigrationReason.COPY_LOST)]
    job = run_job(cp, plans[0])
    assert job.succeeded and job.history[0].step is S.PREFILL
    assert cp.locate(session.id) == plans[0].target
    assert cp.counters["copies_lost"] == 1 and cp.counters["migrations_done"] == 1


def test_pressure_migration_keeps_serving_from_the_source_until_the_flip(tmp_path, clock):
    cp = make_cp(tmp_path, clock, pressure_threshold=0.5, pressure_target=0.4)
    beat(cp, R1)
    sessions = []
    for i in range(3):  # 60 MiB on r1, sessions[0] least recently used
        clock.now_s += 1
        sessions.append(load(cp, f"doc {i}", mib=20))
    beat(cp, R2)
    plans = cp.tick().plans
    assert [p.session_id for p in plans] == [sessions[0].id] and plans[0].target == R2
    job = cp.start_migration(plans[0])
    assert cp.store.get(sessions[0].id).state is SessionState.MIGRATING
    for step in (S.EXPORT, S.TRANSFER):
        assert cp.locate(sessions[0].id) == R1
        job = cp.report_step(job.job_id, StepResult(step, True))
    assert cp.tick().plans == []  # the job's session is not planned twice
    cp.apply_pool_event(R2, PoolEvent("stored", "t", sessions[0].id, "device", 20 * MiB))
    job = cp.report_step(job.job_id, StepResult(S.IMPORT, True))
    assert job.next_step() is S.FREE_SOURCE and job.flipped
    assert cp.locate(sessions[0].id) == R2 and cp.store.get(sessions[0].id).replica == R2
    cp.apply_pool_event(R1, PoolEvent("freed", f"h-{sessions[0].id}", sessions[0].id, "device", 20 * MiB))
    job = cp.report_step(job.job_id, StepResult(S.FREE_SOURCE, True))
    assert job.succeeded and cp.view.pressure(R1) == pytest.approx(0.4)


def test_a_failed_move_from_a_live_source_returns_the_session_to_it(tmp_path, clock):
    cp = make_cp(tmp_path, clock, migration_retries=0)
    beat(cp, R1)
    session = load(cp)
    beat(cp, R2)
    plan = cp.plan_move(session.id, R2)
    job = run_job(cp, plan, failures={S.TRANSFER: 1, S.PREFILL: 1})
    assert not job.succeeded and job.fell_back_to_rebuild
    back = cp.store.get(session.id)
    assert back.state is SessionState.READY and back.replica == R1 and back.target_replica is None
    assert cp.locate(session.id) == R1


def test_replica_death_recovers_every_session(tmp_path, clock):
    cp = make_cp(tmp_path, clock, migration_retries=1)
    beat(cp, R1)
    on_device = load(cp, "device doc")
    on_disk = load(cp, "disk doc")
    cp.apply_pool_event(R1, PoolEvent("spilled", f"h-{on_disk.id}", on_disk.id, "disk", 5 * MiB))
    beat(cp, R2)
    clock.now_s += 11
    beat(cp, R2)
    report = cp.tick()
    assert report.dead_replicas == [R1]
    with pytest.raises(SessionNotReady, match="dead replica r1"):
        cp.locate(on_device.id)
    plans = {p.session_id: p for p in report.plans}
    assert plans[on_device.id].method is MigrationMethod.REBUILD
    assert (plans[on_disk.id].method, plans[on_disk.id].source_tier) == (MigrationMethod.TRANSFER, Tier.DISK)
    assert run_job(cp, plans[on_device.id]).succeeded
    disk_job = run_job(cp, plans[on_disk.id], failures={S.TRANSFER: 2})  # the disk copy is unreadable
    assert disk_job.succeeded and disk_job.fell_back_to_rebuild
    assert cp.locate(on_device.id) == R2 and cp.locate(on_disk.id) == R2
    assert cp.counters["rebuild_fallbacks"] == 1 and cp.tick().plans == []


def test_drain_plans_until_the_replica_is_empty(tmp_path, clock):
    cp = make_cp(tmp_path, clock, max_migrations_per_tick=1)
    beat(cp, R1)
    first, second = load(cp, "a"), load(cp, "b")
    beat(cp, R2)
    plans = cp.drain(R1)
    assert len(plans) == 1 and all(p.reason is MigrationReason.DRAIN for p in plans)
    assert run_job(cp, plans[0]).succeeded
    follow_up = cp.tick().plans
    assert [p.reason for p in follow_up] == [MigrationReason.DRAIN]
    run_job(cp, follow_up[0])
    assert cp.view.session_count(R1) == 0 and {cp.locate(first.id), cp.locate(second.id)} == {R2}
    _, decision = cp.open_session(model="m", context=SessionContext(text="new"))
    assert decision.replica_id == R2  # r1 is emptier but draining


def test_deleting_a_session_aborts_its_migration(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    session = load(cp)
    beat(cp, R2)
    job = cp.start_migration(cp.plan_move(session.id, R2))
    with pytest.raises(InvalidMigration, match="already has migration job"):
        cp.start_migration(job.plan)
    deleted, entries = cp.delete_session(session.id, owner="alice")
    assert deleted.state is SessionState.DELETED and [e.handle for e in entries] == [f"h-{session.id}"]
    assert job.next_step() is S.DISCARD_TARGET
    job = cp.report_step(job.job_id, StepResult(S.DISCARD_TARGET, True))
    assert job.finished and not job.succeeded and len(cp.jobs) == 0


def test_restart_resumes_from_the_store(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1, R2)
    steady = load(cp, "steady")
    moving = load(cp, "moving")
    loading, _ = cp.open_session(model="m", context=SessionContext(text="half loaded"))
    target = R2 if moving.replica == R1 else R1
    job = cp.start_migration(cp.plan_move(moving.id, target))
    cp.report_step(job.job_id, StepResult(S.EXPORT, True))
    event = cp.begin_admin_event("move", session_id=moving.id)
    cp.update_admin_event(event.event_id, AdminEventStatus.RUNNING, job_id=job.job_id)
    # The control plane dies here (no close()); a new one opens the same file.
    restarted = make_cp(tmp_path, clock)
    assert restarted.view.session(steady.id).state is SessionState.READY
    resumed = restarted.view.session(moving.id)
    assert resumed.state is SessionState.READY and resumed.replica == moving.replica and resumed.target_replica is None
    assert restarted.view.session(loading.id).state is SessionState.REBUILDING
    assert restarted.admin_event(event.event_id).status is AdminEventStatus.RUNNING
    # Until the replicas report, nothing is routed to them; then everything is served again.
    with pytest.raises(NoReplicaAvailable):
        restarted.open_session(model="m", context=SessionContext(text="new"))
    beat(restarted, R1, R2)
    assert restarted.locate(steady.id) == steady.replica
    plans = restarted.tick().plans
    assert [(p.session_id, p.method) for p in plans] == [(loading.id, MigrationMethod.REBUILD)]


def test_replicas_that_never_come_back_after_a_restart_are_declared_dead(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    session = load(cp)
    restarted = make_cp(tmp_path, clock)
    beat(restarted, R2)
    clock.now_s += 11
    beat(restarted, R2)
    report = restarted.tick()
    assert report.dead_replicas == [R1]
    assert [(p.session_id, p.target) for p in report.plans] == [(session.id, R2)]


def test_a_revived_replica_is_told_to_free_its_stale_copies(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    session = load(cp)
    beat(cp, R2)
    cp.mark_dead(R1)
    run_job(cp, cp.tick().plans[0])
    beat(cp, R1, R2)  # r1 was only partitioned; its pool still has the old copy
    assert [(e.replica_id, e.handle) for e in cp.tick().to_free] == [(R1, f"h-{session.id}")]


def test_admin_events_are_polled_across_restarts(tmp_path, clock):
    cp = make_cp(tmp_path, clock)
    event = cp.begin_admin_event("pin", session_id="sess_x")
    assert event.status is AdminEventStatus.PENDING and event.event_id.startswith("evt_")
    cp.update_admin_event(event.event_id, AdminEventStatus.DONE, pinned=True)
    cp.close()
    with SQLiteSessionStore(tmp_path / "cp.sqlite3") as store:
        polled = store.get_event(event.event_id)
    assert polled.status is AdminEventStatus.DONE and polled.detail == {"session_id": "sess_x", "pinned": True}
    with pytest.raises(UnknownAdminEvent):
        make_cp(tmp_path, clock).admin_event("evt_nope")


def test_stats_snapshot_is_json_ready(tmp_path, clock):
    import json

    cp = make_cp(tmp_path, clock)
    beat(cp, R1)
    load(cp)
    stats_now = json.loads(json.dumps(cp.stats()))
    assert stats_now["sessions"] == {"ready": 1}
    assert stats_now["replicas"]["r1"]["held_bytes"]["device"] == 10 * MiB
    assert stats_now["replicas"]["r1"]["sessions"] == 1 and stats_now["counters"]["sessions_opened"] == 1
