"""Issue 14 item 3: no session stays in a transient state; the bounded sweep repairs overstays."""

from __future__ import annotations

import pytest

from control_plane import ControlPlane, ControlPlaneConfig, ReplicaId, SessionContext, SessionId, SessionState, Tier
from control_plane.migration import MigrationStep, StepResult
from control_plane.transient_sweep import TransientSweep, repair_record
from kvpool.press_spec import PressSpec

from cp_factories import MiB, PoolEvent, record, stats

R1, R2 = ReplicaId("r1"), ReplicaId("r2")


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_cp(tmp_path, clock, **overrides) -> ControlPlane:
    settings = {"store_path": tmp_path / "cp.sqlite3", "placement_policy": "least_bytes", "heartbeat_timeout_s": 1e6,
                "transient_timeout_s": 60.0, **overrides}
    return ControlPlane(ControlPlaneConfig(**settings), clock=clock)


def open_loading(cp: ControlPlane) -> SessionId:
    for replica in (R1, R2):
        cp.heartbeat(replica, stats(node=f"node-{replica}"))
    rec, _ = cp.open_session(model="m", context=SessionContext(text="doc"),
                             press=PressSpec(name="knorm", compression_ratio=0.5))
    return rec.id


def test_a_load_nobody_finishes_ends_failed_with_a_reason_and_is_counted(tmp_path):
    clock = Clock()
    cp = make_cp(tmp_path, clock)
    sid = open_loading(cp)
    assert cp.tick().repaired == []  # first seen: the clock starts now
    clock.now_s += 59
    assert cp.tick().repaired == [] and cp.session(sid).state is SessionState.LOADING
    clock.now_s += 1
    repaired = cp.tick().repaired
    assert [r.id for r in repaired] == [sid]
    stored = cp.store.get(sid)  # durable, not only in the view
    assert stored.state is SessionState.FAILED and "did not finish within 60 s" in stored.failure
    assert cp.counters["sessions_repaired"] == 1 and cp.counters["sessions_repaired_loading"] == 1
    clock.now_s += 600
    assert cp.tick().repaired == []  # FAILED is not transient: repaired once


def test_a_load_that_finishes_in_time_is_left_alone(tmp_path):
    clock = Clock()
    cp = make_cp(tmp_path, clock)
    sid = open_loading(cp)
    cp.tick()
    clock.now_s += 30
    cp.apply_pool_event(cp.session(sid).replica, PoolEvent("stored", "h", sid, "device", MiB))
    cp.mark_loaded(sid, read_tokens=10, kept_tokens=5, stored_bytes=MiB)
    clock.now_s += 600
    assert cp.tick().repaired == [] and cp.session(sid).state is SessionState.READY
    assert cp.counters["sessions_repaired"] == 0


def test_a_session_driven_by_a_running_job_is_never_repaired(tmp_path):
    clock = Clock()
    cp = make_cp(tmp_path, clock)
    sid = open_loading(cp)
    cp.apply_pool_event(cp.session(sid).replica, PoolEvent("stored", "h", sid, "device", MiB))
    cp.mark_loaded(sid, read_tokens=10, kept_tokens=5, stored_bytes=MiB)
    job = cp.start_migration(cp.plan_move(sid))
    assert cp.session(sid).state is SessionState.MIGRATING
    for _ in range(5):
        clock.now_s += 100
        assert cp.tick().repaired == []
    cp.report_step(job.job_id, StepResult(job.next_step(), False, "abort"))


@pytest.mark.parametrize("state,expected", [
    (SessionState.LOADING, SessionState.FAILED),
    (SessionState.MIGRATING, SessionState.READY),       # back to its source copy
    (SessionState.REBUILDING, SessionState.FAILED),      # no target: nothing could place it
])
def test_repair_of_each_transient_state(state, expected):
    rec = record(state=state, tier=Tier.DEVICE)
    fixed = repair_record(rec, 60)
    assert fixed.state is expected and fixed.version == rec.version + 1


def test_a_rebuild_with_a_lost_target_is_planned_again():
    rec = record(state=SessionState.REBUILDING, replica=None, tier=None).model_copy(update={"target_replica": R2})
    fixed = repair_record(rec, 60)
    assert fixed.state is SessionState.REBUILDING and fixed.target_replica is None


def test_the_clock_restarts_when_the_record_changes():
    sweep = TransientSweep(10)
    rec = record(state=SessionState.LOADING)
    assert sweep.overdue([rec], 0, set()) == []
    assert sweep.overdue([rec.updated(failure="progress")], 9, set()) == []  # new version at 9
    assert sweep.overdue([rec.updated(failure="progress")], 18, set()) == []
    assert len(sweep.overdue([rec.updated(failure="progress")], 19, set())) == 1


def test_max_age_must_be_positive():
    with pytest.raises(ValueError, match="max_age_s"):
        TransientSweep(0)
