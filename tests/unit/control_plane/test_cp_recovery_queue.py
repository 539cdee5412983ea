"""control_plane.recovery_queue: the order lost sessions come back in, and read-back vs re-prefill."""

from __future__ import annotations

import pytest

from control_plane import ReplicaId, SessionId, SessionState
from control_plane.config import RecoveryConfig
from control_plane.recovery_queue import RecoveryQueue, retry_after_s
from tests.unit.control_plane.cp_factories import config, record, view_with

PRESS = {"name": "knorm", "compression_ratio": 0.5}  # what cp_factories.record stores, in JSON form


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lost(view, n: int, *, last_used=None) -> list:
    """``n`` orphans (REBUILDING, no replica), s0 used least recently unless ``last_used`` says otherwise."""
    records = []
    for i in range(n):
        rec = record(f"s{i}", state=SessionState.REBUILDING, replica=None, tier=None,
                     last_used_s=(last_used or {}).get(i, float(i)))
        view.put_session(rec)
        records.append(rec)
    return records


def queue(**settings) -> tuple[RecoveryQueue, Clock]:
    clock = Clock()
    return RecoveryQueue(RecoveryConfig(**{"max_concurrent": 2, "max_concurrent_demanded": 2, **settings}), clock), clock


def never_busy(session_id) -> bool:
    return False


def test_background_is_most_recently_used_first_and_bounded():
    view = view_with(("r1", {}), ("r2", {}))
    q, _ = queue()
    for rec in lost(view, 5):
        q.add(rec)
    plans = q.next_plans(view, config(), {}, never_busy)
    assert [p.session_id for p in plans] == ["s4", "s3"]  # two background slots, newest use first
    assert q.next_plans(view, config(), {}, never_busy) == []  # slots full until something finishes
    q.finished(SessionId("s4"), "rebuild", 3.0)
    assert [p.session_id for p in q.next_plans(view, config(), {}, never_busy)] == ["s2"]


def test_asked_for_goes_first_even_past_full_background_slots():
    view = view_with(("r1", {}), ("r2", {}))
    q, clock = queue()
    records = lost(view, 6)
    for rec in records:
        q.add(rec)
    q.next_plans(view, config(), {}, never_busy)  # s5, s4 running in the background slots
    q.demand(records[0])
    clock.now += 1
    q.demand(records[1])
    assert q.order()[:2] == ["s0", "s1"]
    plans = q.next_plans(view, config(), {}, never_busy)
    assert [p.session_id for p in plans] == ["s0", "s1"]  # their own slots: not behind s5/s4


def test_asked_for_recoveries_have_their_own_bound_too():
    view = view_with(("r1", {}), ("r2", {}))
    q, clock = queue(max_concurrent=1, max_concurrent_demanded=2)
    records = lost(view, 5)
    for rec in records:
        q.add(rec)
    for rec in records[:3]:
        clock.now += 1
        q.demand(rec)
    plans = q.next_plans(view, config(), {}, never_busy)
    assert [p.session_id for p in plans] == ["s0", "s1", "s4"]  # 2 asked-for slots (oldest ask first) + 1 background
    # only the one nobody asked for yields its re-prefill to live prefills on its replica
    assert [p.background for p in plans] == [False, False, True]
    assert q.next_plans(view, config(), {}, never_busy) == []  # s2, asked for too, waits for a slot of its kind
    q.finished(SessionId("s4"), "read", 0.5)  # a background slot frees: still not s2's
    assert [p.session_id for p in q.next_plans(view, config(), {}, never_busy)] == ["s3"]
    q.finished(SessionId("s0"), "read", 0.5)
    assert [p.session_id for p in q.next_plans(view, config(), {}, never_busy)] == ["s2"]


def test_live_work_first_background_waits_for_quiet_replicas():
    view = view_with(("r1", {}), ("r2", {}))
    q, _ = queue()
    records = lost(view, 3)
    for rec in records:
        q.add(rec)
    busy_everywhere = {ReplicaId("r1"): 2, ReplicaId("r2"): 1}
    assert q.next_plans(view, config(), busy_everywhere, never_busy) == []
    q.demand(records[0])  # a request waits: it goes anyway, as live work (never preempted)
    demanded = q.next_plans(view, config(), busy_everywhere, never_busy)
    assert [(p.session_id, p.background) for p in demanded] == [("s0", False)]
    plans = q.next_plans(view, config(), {ReplicaId("r1"): 1, ReplicaId("r2"): 0}, never_busy)
    assert plans and {p.target for p in plans} == {"r2"}  # only onto the replica without live work
    assert all(p.background for p in plans)


def test_a_client_load_placed_since_the_last_heartbeat_keeps_background_recovery_off_its_replica():
    """Heartbeats come every 2 s, a load takes a fraction of a second: the heartbeat's counts alone
    would hardly ever see one. A LOADING record (a client's load, placed by the control plane) does."""
    view = view_with(("r1", {}), ("r2", {}))
    q, _ = queue()
    records = lost(view, 3)
    for rec in records:
        q.add(rec)
    view.put_session(record("client", state=SessionState.LOADING, replica=ReplicaId("r1")))
    plans = q.next_plans(view, config(), {}, never_busy)  # the heartbeats saw no live work anywhere
    assert len(plans) == 2 and {p.target for p in plans} == {"r2"}
    q.demand(records[0])  # a request waits for s0: it may go onto r1 all the same
    assert [p.session_id for p in q.next_plans(view, config(), {}, never_busy)] == ["s0"]


def test_reads_back_where_a_matching_copy_is_else_rebuilds():
    view = view_with(("r1", {}), ("r2", {}))
    q, _ = queue(max_concurrent=10)
    records = lost(view, 4)
    for rec in records:
        q.add(rec)
    q.note_persisted(ReplicaId("r2"), {
        "s0": {"owner": "anonymous", "press": PRESS},
        "s1": {"owner": "mallory", "press": PRESS},                     # another owner: not this session's
        "s2": {"owner": None, "press": None},                           # a migration import: unchecked fields
        "s3": {"owner": "anonymous", "press": {"name": "snapkv", "compression_ratio": 0.5}},
    })
    plans = {p.session_id: p for p in q.next_plans(view, config(), {}, never_busy)}
    assert plans["s0"].read_persisted and plans["s0"].target == "r2"
    assert plans["s2"].read_persisted and plans["s2"].target == "r2"
    assert not plans["s1"].read_persisted and not plans["s3"].read_persisted
    assert "no usable durable copy" in plans["s1"].detail


@pytest.mark.parametrize("node, plan_is", [
    ("n2", ("r1", False, None)),          # another node: its files are out of reach, re-prefill
    ("node-a", ("r1", True, "r2")),       # the same node: r1 reads r2's files
])
def test_copy_on_a_dead_replica_is_read_from_its_node_or_rebuilt_elsewhere(node, plan_is):
    view = view_with(("r1", {}), ("r2", {"node": node}))
    view.mark_dead(ReplicaId("r2"))
    q, _ = queue()
    (rec,) = lost(view, 1)
    q.add(rec)
    q.note_persisted(ReplicaId("r2"), {"s0": {"owner": "anonymous", "press": PRESS}})
    (plan,) = q.next_plans(view, config(), {}, never_busy)
    assert (plan.target, plan.read_persisted, plan.read_from) == plan_is
    assert ("from r1 (same node)" in plan.detail) == plan.read_persisted


def test_a_restarting_holder_is_read_by_a_replica_of_its_node_not_waited_for():
    """After a SIGKILL the holder spends seconds loading its model; a same-node replica reads its
    files at once. A holder that is not restarting reads its own copy (no double file)."""
    view = view_with(("r1", {}), ("r2", {}), ("r3", {"node": "n2"}))
    view.restarting(ReplicaId("r1"), 1.0)
    q, _ = queue()
    for rec in lost(view, 2):
        q.demand(rec)
    q.note_persisted(ReplicaId("r1"), {"s0": {"owner": "anonymous", "press": PRESS}})
    q.note_persisted(ReplicaId("r2"), {"s1": {"owner": "anonymous", "press": PRESS}})
    plans = {p.session_id: p for p in q.next_plans(view, config(), {}, never_busy)}
    assert (plans["s0"].target, plans["s0"].read_persisted, plans["s0"].read_from) == ("r2", True, "r1")
    assert (plans["s1"].target, plans["s1"].read_persisted, plans["s1"].read_from) == ("r2", True, None)


def test_a_restarting_holder_alone_on_its_node_reads_its_own_copy_and_rebuilds_avoid_it():
    view = view_with(("r1", {}), ("r2", {"node": "n2"}))
    view.restarting(ReplicaId("r1"), 1.0)
    q, _ = queue()
    for rec in lost(view, 2):
        q.demand(rec)
    q.note_persisted(ReplicaId("r1"), {"s0": {"owner": "anonymous", "press": PRESS}})
    plans = {p.session_id: p for p in q.next_plans(view, config(), {}, never_busy)}
    assert (plans["s0"].target, plans["s0"].read_persisted, plans["s0"].read_from) == ("r1", True, None)
    assert (plans["s1"].target, plans["s1"].read_persisted) == ("r2", False)  # no copy: not on the restarting one


def test_sessions_that_came_back_or_were_deleted_leave_the_queue():
    view = view_with(("r1", {}))
    q, _ = queue()
    records = lost(view, 2)
    for rec in records:
        q.add(rec)
    view.put_session(records[0].transition(SessionState.READY, replica=ReplicaId("r1"), tier="device"))
    plans = q.next_plans(view, config(), {}, never_busy)
    assert [p.session_id for p in plans] == ["s1"] and "s0" not in q


def test_busy_sessions_wait():
    view = view_with(("r1", {}))
    q, _ = queue()
    (rec,) = lost(view, 1)
    q.add(rec)
    assert q.next_plans(view, config(), {}, lambda s: True) == [] and "s0" in q


def test_estimate_grows_with_the_queue_and_learns_durations():
    view = view_with(("r1", {}))
    q, clock = queue(max_concurrent=1, rebuild_estimate_s=10.0, read_estimate_s=1.0)
    records = lost(view, 3)
    for rec in records:
        q.add(rec)
    # order: s2, s1, s0; nothing running yet
    assert q.estimate_s(SessionId("s2")) == pytest.approx(10.0)
    assert q.estimate_s(SessionId("s0")) == pytest.approx(30.0)
    q.note_persisted(ReplicaId("r1"), {"s0": {"owner": "anonymous", "press": PRESS}})
    assert q.estimate_s(SessionId("s0")) == pytest.approx(21.0)  # its own run is a read now
    (plan,) = q.next_plans(view, config(), {}, never_busy)
    clock.now += 4
    assert q.estimate_s(plan.session_id) == pytest.approx(6.0)
    q.finished(plan.session_id, "rebuild", 20.0)
    assert q.snapshot()["mean_s"]["rebuild"] == pytest.approx(13.0)
    assert q.snapshot()["done"] == {"rebuild": 1}
    assert retry_after_s(0.2) == 1 and retry_after_s(6.01) == 7


def test_control_plane_hands_orphans_to_the_queue_not_to_tick():
    from control_plane import ControlPlane
    from tests.unit.control_plane.cp_factories import stats

    cp = ControlPlane(config())
    cp.heartbeat(ReplicaId("r1"), stats())
    for rec in lost(cp.view, 3):
        cp.store.upsert(rec)
    assert cp.recovery.add_orphans(cp.view, cp.jobs.has) == 3
    assert all(p.session_id not in {"s0", "s1", "s2"} for p in cp.tick().plans)
    assert cp.recovery.demand_orphan(cp.view, SessionId("s0"), cp.jobs.has)
    plans = cp.recovery.next_plans(cp.view, cp.config, {ReplicaId("r1"): 5}, cp.jobs.has)  # only the demanded one
    assert [p.session_id for p in plans] == ["s0"]
    job = cp.start_migration(plans[0])
    assert job.plan.read_persisted is False and cp.stats()["recovery"]["running"] == 1
    assert cp.recovery.demand_orphan(cp.view, SessionId("s1"), cp.jobs.has)  # waiting: demanded now
    assert cp.recovery.order()[0] == "s1"
