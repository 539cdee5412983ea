"""ClusterView: heartbeats, liveness, pool-event byte accounting and state changes, queries."""

from __future__ import annotations

import pytest

from control_plane import (
    PoolEventError, ReplicaId, SessionId, SessionNotReady, SessionState, Tier, UnknownReplica, UnknownSession,
)

from cp_factories import MiB, PoolEvent, put_with_copy, record, stats, view_with

R1, R2 = ReplicaId("r1"), ReplicaId("r2")


def test_heartbeat_registers_and_reports_pressure():
    view = view_with(("r1", {"device_mib": 100}), ("r2", {"device_mib": 100, "held_mib": 50, "queue": 3}))
    assert [r.replica_id for r in view.alive_replicas()] == ["r1", "r2"]
    assert view.pressure(R1) == 0.0 and view.pressure(R2) == 0.5
    assert view.replica(R2).queue_depth == 3 and view.replica(R2).free_bytes(Tier.DEVICE) == 50 * MiB
    with pytest.raises(UnknownReplica, match="r1, r2"):
        view.replica(ReplicaId("r9"))


def test_missed_heartbeats_mark_a_replica_dead_and_a_new_heartbeat_revives_it():
    view = view_with(("r1", {}), ("r2", {}), now_s=0.0, heartbeat_timeout_s=10.0)
    view.heartbeat(R2, stats(), now_s=8.0)
    assert view.expire_heartbeats(now_s=10.0) == []
    assert view.expire_heartbeats(now_s=10.5) == [R1]
    assert not view.replica(R1).alive and [r.replica_id for r in view.accepting_replicas()] == [R2]
    assert view.expire_heartbeats(now_s=11.0) == []  # already dead: reported once
    view.heartbeat(R1, stats(), now_s=12.0)
    assert view.replica(R1).alive


def test_mark_dead_and_draining_stop_acceptance():
    view = view_with(("r1", {}), ("r2", {"draining": True}))
    assert view.mark_dead(R1).alive is False
    assert view.accepting_replicas() == []
    assert [r.replica_id for r in view.alive_replicas()] == [R2]


def test_expected_replica_takes_nothing_until_it_reports_and_dies_if_it_never_does():
    view = view_with(now_s=0.0, heartbeat_timeout_s=5.0)
    view.expect_replica(R1, now_s=0.0)
    assert view.accepting_replicas() == [] and view.replica(R1).alive
    assert view.expire_heartbeats(now_s=6.0) == [R1]


def test_pool_events_move_bytes_between_tiers_and_states():
    view = view_with(("r1", {"device_mib": 100, "host_mib": 100, "disk_mib": 100}))
    view.put_session(record("s1", stored_mib=10))
    view.apply_pool_event(R1, PoolEvent("stored", "h1", "s1", "device", 10 * MiB))
    assert view.replica(R1).held_bytes.device == 10 * MiB

    spilled = view.apply_pool_event(R1, PoolEvent("spilled", "h1", "s1", "host", 10 * MiB))
    assert spilled.state is SessionState.SPILLED and spilled.tier is Tier.HOST
    held = view.replica(R1).held_bytes
    assert (held.device, held.host) == (0, 10 * MiB)

    again = view.apply_pool_event(R1, PoolEvent("spilled", "h1", "s1", "disk", 4 * MiB))  # disk codec shrinks it
    assert again.tier is Tier.DISK and again.stored_bytes == 4 * MiB and again.state is SessionState.SPILLED
    assert view.replica(R1).held_bytes.disk == 4 * MiB and view.replica(R1).held_bytes.host == 0

    promoted = view.apply_pool_event(R1, PoolEvent("promoted", "h1", "s1", "device", 10 * MiB))
    assert promoted.state is SessionState.READY and promoted.tier is Tier.DEVICE

    recompressed = view.apply_pool_event(R1, PoolEvent("recompressed", "h1", "s1", "device", 3 * MiB))
    assert recompressed.stored_bytes == 3 * MiB and recompressed.state is SessionState.READY
    assert view.replica(R1).held_bytes.device == 3 * MiB
    assert view.session(SessionId("s1")) == recompressed  # the view holds what it returned


def test_eviction_of_the_only_copy_sends_the_session_to_rebuilding():
    view = view_with(("r1", {}))
    put_with_copy(view, record("s1", stored_mib=2))
    lost = view.apply_pool_event(R1, PoolEvent("evicted", "h-s1", "s1", "device", 2 * MiB))
    assert lost.state is SessionState.REBUILDING and lost.replica is None and lost.tier is None
    assert view.replica(R1).held_bytes.device == 0
    assert view.sessions_on(R1) == []
    with pytest.raises(SessionNotReady, match="rebuilding"):
        view.locate(SessionId("s1"))


def test_freeing_a_non_owner_copy_changes_no_record():
    view = view_with(("r1", {}), ("r2", {}))
    put_with_copy(view, record("s1"))
    view.apply_pool_event(R2, PoolEvent("stored", "h2", "s1", "device", MiB))
    assert view.apply_pool_event(R2, PoolEvent("freed", "h2", "s1", "device", MiB)) is None
    assert view.session(SessionId("s1")).state is SessionState.READY
    assert [e.replica_id for e in view.copies_of(SessionId("s1"))] == [R1]


def test_entries_without_a_session_count_bytes_only():
    view = view_with(("r1", {}))
    assert view.apply_pool_event(R1, {"kind": "stored", "handle": "prefix-1", "session_id": None, "tier": "host",
                                      "nbytes": 7}) is None
    assert view.replica(R1).held_bytes.host == 7
    view.apply_pool_event(R1, {"kind": "evicted", "handle": "prefix-1", "session_id": None, "tier": "host",
                               "nbytes": 7})
    assert view.replica(R1).held_bytes.host == 0


def test_heartbeat_held_bytes_override_the_event_sum():
    view = view_with(("r1", {}))
    view.apply_pool_event(R1, PoolEvent("stored", "h", None, "device", 5 * MiB))
    view.heartbeat(R1, stats(held_mib=20), now_s=1.0)
    assert view.replica(R1).held_bytes.device == 20 * MiB
    view.apply_pool_event(R1, PoolEvent("freed", "h", None, "device", 5 * MiB))
    assert view.replica(R1).held_bytes.device == 15 * MiB


@pytest.mark.parametrize(("event", "message"), [
    ({"kind": "teleported", "handle": "h", "tier": "device", "nbytes": 1}, "stored, spilled"),
    ({"kind": "stored", "tier": "device", "nbytes": 1}, "handle"),
    ({"kind": "stored", "handle": "h", "tier": "device"}, "byte count"),
    ({"kind": "stored", "handle": "h", "tier": "tape", "nbytes": 1}, "unknown tier"),
    ({"kind": "stored", "handle": "h", "nbytes": 1}, "tier"),
])
def test_malformed_pool_events_are_rejected_with_the_reason(event, message):
    view = view_with(("r1", {}))
    with pytest.raises(PoolEventError, match=message):
        view.apply_pool_event(R1, event)


def test_pool_event_from_an_unknown_replica_asks_for_a_heartbeat():
    with pytest.raises(UnknownReplica, match="heartbeat"):
        view_with().apply_pool_event(R1, PoolEvent("stored", "h", "s", "device", 1))


def test_locate_routes_only_servable_sessions_on_alive_replicas():
    view = view_with(("r1", {}))
    put_with_copy(view, record("ready"))
    view.put_session(record("loading", state=SessionState.LOADING, tier=None))
    view.put_session(record("failed", state=SessionState.FAILED).updated(failure="prefill OOM"))
    assert view.locate(SessionId("ready")) == R1
    with pytest.raises(SessionNotReady, match="loading"):
        view.locate(SessionId("loading"))
    with pytest.raises(SessionNotReady, match="prefill OOM"):
        view.locate(SessionId("failed"))
    with pytest.raises(UnknownSession, match="POST /v1/sessions"):
        view.locate(SessionId("nope"))
    view.mark_dead(R1)
    with pytest.raises(SessionNotReady, match="dead replica r1"):
        view.locate(SessionId("ready"))


def test_indexes_follow_record_changes():
    view = view_with(("r1", {}), ("r2", {}))
    a = put_with_copy(view, record("a", owner="alice", text="shared"))
    put_with_copy(view, record("b", owner="alice", text="shared", replica="r2"))
    assert dict(view.context_replicas(a.context_hash)) == {R1: 1, R2: 1}
    assert dict(view.owner_replicas("alice")) == {R1: 1, R2: 1}
    view.put_session(a.transition(SessionState.DELETED))
    assert dict(view.context_replicas(a.context_hash)) == {R2: 1}
    assert [r.id for r in view.sessions_on(R1)] == [] and view.session_count() == 1
    moving = view.session(SessionId("b")).transition(SessionState.MIGRATING, target_replica=R1)
    view.put_session(moving)
    assert [r.id for r in view.sessions_heading_to(R1)] == ["b"]
    assert [r.id for r in view.sessions_on(R2)] == ["b"]


def test_expired_sessions_query():
    view = view_with(("r1", {}))
    put_with_copy(view, record("old", ttl_s=5, last_used_s=0))
    put_with_copy(view, record("new", ttl_s=5, last_used_s=10))
    assert [r.id for r in view.expired_sessions(now_s=6)] == ["old"]


def test_stray_entries_are_copies_nothing_routes_to():
    view = view_with(("r1", {}), ("r2", {}))
    put_with_copy(view, record("kept"))
    view.apply_pool_event(R2, PoolEvent("stored", "old-copy", "kept", "device", MiB))
    view.apply_pool_event(R2, PoolEvent("stored", "ghost", "deleted-session", "host", MiB))
    view.apply_pool_event(R2, PoolEvent("stored", "prefix", None, "device", MiB))
    assert sorted(e.handle for e in view.stray_entries(R2)) == ["ghost", "old-copy"]
    assert view.stray_entries(R1) == []


def test_pin_and_quantize_events_keep_the_entry_held():
    view = view_with(("r1", {}))
    put_with_copy(view, record("s1", stored_mib=8))
    assert view.apply_pool_event(R1, PoolEvent("pinned", "h-s1", "s1", "device", 8 * MiB)) is None
    quantized = view.apply_pool_event(R1, PoolEvent("quantized", "h-s1", "s1", "device", 2 * MiB))
    assert quantized.stored_bytes == 2 * MiB and view.replica(R1).held_bytes.device == 2 * MiB


def test_ready_and_spilled_are_relative_to_the_replicas_fastest_tier():
    gpu = view_with(("r1", {"device_mib": 100, "host_mib": 100}))
    cpu = view_with(("r1", {"device_mib": 0, "host_mib": 100, "disk_mib": 100}))
    assert gpu.replica(R1).primary_tier is Tier.DEVICE and cpu.replica(R1).primary_tier is Tier.HOST
    for view, host_state in ((gpu, SessionState.SPILLED), (cpu, SessionState.READY)):
        put_with_copy(view, record("s1", tier=Tier.HOST, state=host_state))
        moved = view.apply_pool_event(R1, PoolEvent("spilled", "h-s1", "s1", "disk", MiB))
        assert moved.state is SessionState.SPILLED
        back = view.apply_pool_event(R1, PoolEvent("promoted", "h-s1", "s1", "host", MiB))
        assert back.state is host_state
    assert cpu.pressure(R1) == pytest.approx(0.01)  # measured on the host tier of a CPU replica
