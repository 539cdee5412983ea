"""Migration planners: pressure relief, drain, replica death, orphans and admin moves."""

from __future__ import annotations

import pytest

from control_plane import (
    InsufficientCapacity, InvalidMigration, MigrationMethod, MigrationReason, ReplicaId,
    SessionId, SessionState, Tier, UnknownReplica,
)
from control_plane.migration import (
    plan_admin_move, plan_drain, plan_orphan_rebuilds, plan_pressure_relief, plan_replica_death,
)

from cp_factories import MiB, PoolEvent, config, put_with_copy, record, stats, view_with

R1, R2, R3 = ReplicaId("r1"), ReplicaId("r2"), ReplicaId("r3")


def crowded_view(**r1_kwargs):
    """r1 (100 MiB device) holds 95 MiB in ten sessions, s0 least recently used; r2, r3 are empty."""
    view = view_with(("r1", r1_kwargs or {}), ("r2", {}), ("r3", {}))
    sizes = [5, 14, 8, 12, 6, 10, 9, 11, 7, 13]  # 95 MiB
    for i, size in enumerate(sizes):
        put_with_copy(view, record(f"s{i}", stored_mib=size, last_used_s=float(i)))
    return view


def test_pressure_moves_least_recently_used_first_down_to_the_target():
    view = crowded_view()
    plans = plan_pressure_relief(view, config(pressure_threshold=0.9, pressure_target=0.75))
    assert [p.session_id for p in plans] == ["s0", "s1", "s2"]  # 5 + 14 < 95 - 75 <= 5 + 14 + 8 MiB
    assert all(p.source == R1 and p.method is MigrationMethod.TRANSFER and p.reason is MigrationReason.PRESSURE
               and p.free_source for p in plans)
    assert {p.target for p in plans} <= {R2, R3}
    assert sum(p.stored_bytes for p in plans) >= 20 * MiB


def test_pressure_largest_first_needs_fewer_moves():
    plans = plan_pressure_relief(crowded_view(), config(victim_order="largest"))
    assert [p.session_id for p in plans] == ["s1", "s9"]  # 14 + 13 MiB


def test_no_plans_below_the_threshold():
    view = crowded_view()
    assert plan_pressure_relief(view, config(pressure_threshold=0.96, pressure_target=0.5)) == []


def test_targets_are_never_pushed_over_the_target_mark():
    view = view_with(("r1", {}), ("r2", {"held_mib": 70}))
    for i in range(10):
        put_with_copy(view, record(f"s{i}", stored_mib=10, last_used_s=i))  # r1 at 100 %
    plans = plan_pressure_relief(view, config(pressure_threshold=0.9, pressure_target=0.8))
    assert [p.target for p in plans] == [R2]  # r2: 70 -> 80 MiB, then full up to the target
    assert plan_pressure_relief(view, config(pressure_threshold=0.9, pressure_target=0.7)) == []


def test_pinned_spilled_and_moving_sessions_are_not_pressure_victims():
    view = view_with(("r1", {}), ("r2", {}))
    put_with_copy(view, record("pinned", stored_mib=40, pinned=True))
    put_with_copy(view, record("on_host", stored_mib=30, tier=Tier.HOST, state=SessionState.SPILLED))
    put_with_copy(view, record("moving", stored_mib=25).transition(SessionState.MIGRATING, target_replica=R2))
    put_with_copy(view, record("plain", stored_mib=30))
    assert view.replica(R1).held_bytes.device == 95 * MiB  # 40 + 25 + 30 on the device, 30 on the host
    # Over 0.9, but 95 - 25 already leaving = 70 MiB <= 75: nothing more to move.
    assert plan_pressure_relief(view, config(pressure_threshold=0.9, pressure_target=0.75)) == []
    view.heartbeat(R1, stats(held_mib=125), now_s=0)  # the pool also holds 30 MiB of shared prefixes
    assert [p.session_id for p in plan_pressure_relief(view, config())] == ["plain"]


def test_bytes_already_heading_to_a_target_are_reserved():
    view = view_with(("r1", {}), ("r2", {}), ("r3", {"held_mib": 50}))
    for i in range(10):
        put_with_copy(view, record(f"s{i}", stored_mib=10, last_used_s=i))
    inbound = put_with_copy(view, record("in", replica="r3", stored_mib=1))
    view.put_session(inbound.transition(SessionState.MIGRATING, target_replica=R2).updated(stored_bytes=70 * MiB))
    plans = plan_pressure_relief(view, config(pressure_threshold=0.9, pressure_target=0.75))
    assert {p.target for p in plans} == {R3}  # r2 already expects 70 MiB


def test_plan_limit_is_respected():
    plans = plan_pressure_relief(crowded_view(), config(pressure_target=0.5, pressure_threshold=0.6), limit=3)
    assert len(plans) == 3


def test_drain_moves_every_ready_or_spilled_session_pinned_included():
    view = view_with(("r1", {}), ("r2", {}), ("r3", {"held_mib": 60}))
    put_with_copy(view, record("a", stored_mib=30, pinned=True, last_used_s=1))
    put_with_copy(view, record("b", stored_mib=30, tier=Tier.DISK, state=SessionState.SPILLED, last_used_s=2))
    view.put_session(record("loading", state=SessionState.LOADING, tier=None))
    view.set_draining(R1)
    plans = plan_drain(view, R1, config())
    assert [p.session_id for p in plans] == ["b", "a"]  # most recently used first
    assert all(p.reason is MigrationReason.DRAIN and p.source == R1 for p in plans)
    assert plans[0].source_tier is Tier.DISK
    assert [p.target for p in plans] == [R2, R2]  # r2 has room for both below the threshold


def test_drain_spills_onto_full_replicas_when_nothing_has_device_room():
    view = view_with(("r1", {}), ("r2", {"held_mib": 95, "host_mib": 100}))
    put_with_copy(view, record("a", stored_mib=30))
    plans = plan_drain(view, R1, config())
    assert [p.target for p in plans] == [R2]
    view_no_room = view_with(("r1", {}), ("r2", {"held_mib": 95}))
    put_with_copy(view_no_room, record("a", stored_mib=30))
    assert plan_drain(view_no_room, R1, config()) == []  # left for a later call
    with pytest.raises(UnknownReplica):
        plan_drain(view, ReplicaId("r9"), config())


def test_death_rebuilds_without_a_copy_and_transfers_from_a_surviving_one():
    view = view_with(("r1", {"node": "n1"}), ("r2", {"node": "n2"}), ("r3", {"node": "n1"}))
    put_with_copy(view, record("lost", stored_mib=4, last_used_s=3))
    on_disk = put_with_copy(view, record("on_disk", stored_mib=4, last_used_s=2))
    view.apply_pool_event(R1, PoolEvent("spilled", "h-on_disk", "on_disk", "disk", 2 * MiB))
    put_with_copy(view, record("elsewhere", stored_mib=4, last_used_s=1))
    view.apply_pool_event(R2, PoolEvent("stored", "copy", "elsewhere", "host", 4 * MiB))
    view.mark_dead(R1)
    plans = {p.session_id: p for p in plan_replica_death(view, R1, config())}
    assert plans["lost"].method is MigrationMethod.REBUILD and not plans["lost"].free_source
    disk = plans["on_disk"]
    assert (disk.method, disk.source, disk.source_tier, disk.target) == (MigrationMethod.TRANSFER, R1, Tier.DISK, R3)
    other = plans["elsewhere"]
    assert (other.method, other.source, other.source_tier) == (MigrationMethod.TRANSFER, R2, Tier.HOST)
    assert all(p.reason is MigrationReason.REPLICA_DEAD and p.target != R1 for p in plans.values())


def test_death_without_surviving_disk_rebuilds_everything():
    view = view_with(("r1", {}), ("r2", {}))
    put_with_copy(view, record("on_disk", tier=Tier.DISK, state=SessionState.SPILLED))
    view.mark_dead(R1)
    plans = plan_replica_death(view, R1, config(disk_copies_survive_replica_death=False))
    assert [p.method for p in plans] == [MigrationMethod.REBUILD]


def test_orphans_are_rebuilt_and_running_rebuilds_left_alone():
    view = view_with(("r1", {}), ("r2", {}))
    view.put_session(record("evicted", state=SessionState.REBUILDING, replica=None, tier=None))
    view.put_session(record("running", state=SessionState.REBUILDING, replica=None, tier=None)
                     .updated(target_replica=R2))
    view.put_session(record("stuck", state=SessionState.REBUILDING, replica=None, tier=None)
                     .updated(target_replica=ReplicaId("gone")))
    plans = plan_orphan_rebuilds(view, config())
    assert sorted(p.session_id for p in plans) == ["evicted", "stuck"]
    assert all(p.method is MigrationMethod.REBUILD and p.source is None for p in plans)


def test_admin_move_to_a_named_or_chosen_target():
    view = view_with(("r1", {}), ("r2", {"held_mib": 50}), ("r3", {}))
    put_with_copy(view, record("s"))
    plan = plan_admin_move(view, SessionId("s"), config(), target=R2)
    assert (plan.source, plan.target, plan.reason, plan.free_source) == (R1, R2, MigrationReason.ADMIN, True)
    assert plan_admin_move(view, SessionId("s"), config()).target == R3
    assert plan_admin_move(view, SessionId("s"), config(), method=MigrationMethod.REBUILD).method is MigrationMethod.REBUILD


def test_admin_move_refuses_nonsense():
    view = view_with(("r1", {}), ("r2", {"draining": True}))
    put_with_copy(view, record("s"))
    view.put_session(record("loading", state=SessionState.LOADING))
    with pytest.raises(InvalidMigration, match="already on r1"):
        plan_admin_move(view, SessionId("s"), config(), target=R1)
    with pytest.raises(InvalidMigration, match="draining"):
        plan_admin_move(view, SessionId("s"), config(), target=R2)
    with pytest.raises(InvalidMigration, match="loading"):
        plan_admin_move(view, SessionId("loading"), config(), target=R2)
    with pytest.raises(InvalidMigration, match="no other alive, non-draining replica"):
        plan_admin_move(view, SessionId("s"), config())  # a 409 over HTTP, not a 503 (issue 19's fuzzer)
    view.heartbeat(R2, stats(held_mib=100), now_s=0)
    with pytest.raises(InsufficientCapacity):
        plan_admin_move(view, SessionId("s"), config())
    view.mark_dead(R1)
    with pytest.raises(InvalidMigration, match="dead"):
        plan_admin_move(view, SessionId("s"), config(), target=R2)
