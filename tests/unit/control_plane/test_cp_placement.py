"""Placement policies: least_bytes, power_of_two, affinity, the registry and the typed errors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from control_plane import (
    InsufficientCapacity, NoReplicaAvailable, PlacementRequest, ReplicaId, SessionId, UnknownPolicy,
)
from control_plane.placement import (
    PLACEMENT_POLICIES, AffinityPlacement, LeastBytesPlacement, PowerOfTwoPlacement, make_placement_policy,
)

from cp_factories import MiB, config, put_with_copy, record, view_with


def request(estimated_mib: float = 1, owner: str = "anonymous", context_hash: str | None = None,
            exclude: tuple[str, ...] = ()) -> PlacementRequest:
    return PlacementRequest(SessionId("new"), model="m", owner=owner, context_hash=context_hash,
                            estimated_bytes=int(estimated_mib * MiB), exclude=frozenset(map(ReplicaId, exclude)))


def test_least_bytes_picks_the_emptiest_device_tier():
    view = view_with(("r1", {"held_mib": 60}), ("r2", {"held_mib": 20}), ("r3", {"held_mib": 40}))
    decision = LeastBytesPlacement().place(request(), view)
    assert decision.replica_id == "r2" and decision.policy == "least_bytes"
    assert "pressure" in decision.reason and decision.node == "node-a"


def test_least_bytes_weighs_capacity_not_raw_bytes():
    view = view_with(("small", {"device_mib": 50, "held_mib": 20}), ("big", {"device_mib": 400, "held_mib": 100}))
    assert LeastBytesPlacement().place(request(), view).replica_id == "big"


def test_least_bytes_ties_break_on_queue_then_id():
    view = view_with(("r2", {"queue": 0}), ("r1", {"queue": 4}), ("r3", {"queue": 0}))
    assert LeastBytesPlacement().place(request(), view).replica_id == "r2"


def test_power_of_two_keeps_the_better_of_its_two_samples():
    view = view_with(*[(f"r{i}", {"queue": i, "held_mib": 10 * i}) for i in range(6)])
    policy = PowerOfTwoPlacement(random.Random(3))
    rng_copy = random.Random(3)
    for _ in range(50):
        first, second = rng_copy.sample(view.accepting_replicas(), 2)
        expected = min(first, second, key=lambda r: (policy.score(r, MiB), r.replica_id))
        assert policy.place(request(), view).replica_id == expected.replica_id


def test_power_of_two_is_reproducible_with_a_seed_and_never_picks_the_worst():
    view = view_with(*[(f"r{i}", {"queue": i}) for i in range(8)])
    picks = [PowerOfTwoPlacement(random.Random(11)).place(request(), view).replica_id for _ in range(3)]
    assert len(set(picks)) == 1
    policy = PowerOfTwoPlacement(random.Random(0))
    counts = Counter(policy.place(request(), view).replica_id for _ in range(400))
    assert "r7" not in counts  # the worst replica loses every comparison
    assert counts["r0"] > counts["r6"]


def test_power_of_two_counts_bytes_as_well_as_queue():
    view = view_with(("full", {"queue": 0, "held_mib": 95}), ("busy", {"queue": 2, "held_mib": 0}))
    assert PowerOfTwoPlacement(random.Random(1)).place(request(), view).replica_id == "busy"


def test_single_candidate_needs_no_sampling():
    view = view_with(("r1", {}), ("r2", {"draining": True}))
    decision = PowerOfTwoPlacement(random.Random(1)).place(request(), view)
    assert decision.replica_id == "r1" and decision.reason == "only eligible replica"


def test_affinity_prefers_the_replica_sharing_the_context():
    view = view_with(("r1", {}), ("r2", {"held_mib": 50}))
    shared = put_with_copy(view, record("a", replica="r2", text="the same long document"))
    policy = AffinityPlacement(LeastBytesPlacement())
    decision = policy.place(request(context_hash=shared.context_hash), view)
    assert decision.replica_id == "r2" and "same context" in decision.reason


def test_affinity_then_prefers_the_owner_then_falls_back():
    view = view_with(("r1", {}), ("r2", {"held_mib": 50}), ("r3", {"held_mib": 10}))
    put_with_copy(view, record("a", replica="r2", owner="alice"))
    policy = AffinityPlacement(LeastBytesPlacement())
    assert policy.place(request(owner="alice", context_hash="unseen"), view).replica_id == "r2"
    fallback = policy.place(request(owner="bob"), view)
    assert fallback.replica_id == "r1" and "least_bytes" in fallback.reason and fallback.policy == "affinity"


def test_affinity_ignores_anonymous_owners_and_overfull_replicas():
    view = view_with(("r1", {}), ("r2", {"held_mib": 80}))  # + the 1 MiB session = 81 MiB
    shared = put_with_copy(view, record("a", replica="r2", text="doc"))
    policy = AffinityPlacement(LeastBytesPlacement(), max_pressure=0.9)
    assert policy.place(request(estimated_mib=0.5, context_hash=shared.context_hash), view).replica_id == "r2"
    assert policy.place(request(estimated_mib=10, context_hash=shared.context_hash), view).replica_id == "r1"
    assert policy.place(request(owner="anonymous"), view).replica_id == "r1"


def test_affinity_skips_an_affine_replica_that_is_draining():
    view = view_with(("r1", {}), ("r2", {}))
    shared = put_with_copy(view, record("a", replica="r2", text="doc"))
    view.set_draining(ReplicaId("r2"))
    assert AffinityPlacement(LeastBytesPlacement()).place(request(context_hash=shared.context_hash), view).replica_id == "r1"


@pytest.mark.parametrize("name", sorted(PLACEMENT_POLICIES))
def test_every_registered_policy_raises_typed_errors(name):
    policy = make_placement_policy(name, config())
    with pytest.raises(NoReplicaAvailable, match="no replica has sent a heartbeat"):
        policy.place(request(), view_with())
    dead_or_draining = view_with(("r1", {}), ("r2", {"draining": True}), ("r3", {}))
    dead_or_draining.mark_dead(ReplicaId("r1"))
    with pytest.raises(NoReplicaAvailable, match="r1=dead, r2=draining, r3=excluded"):
        policy.place(request(exclude=("r3",)), dead_or_draining)
    full = view_with(("r1", {"device_mib": 1}))
    with pytest.raises(InsufficientCapacity, match="r1="):
        policy.place(request(estimated_mib=2), full)
    assert policy.place(request(exclude=("r1",)), view_with(("r1", {}), ("r2", {}))).replica_id == "r2"


def test_registry_builds_affinity_around_its_fallback_and_rejects_unknown_names():
    policy = make_placement_policy("affinity", config(affinity_fallback="least_bytes"))
    assert isinstance(policy, AffinityPlacement) and isinstance(policy.fallback, LeastBytesPlacement)
    with pytest.raises(UnknownPolicy, match="affinity, least_bytes, power_of_two"):
        make_placement_policy("random", config())


@pytest.mark.parametrize("policy", [LeastBytesPlacement(), PowerOfTwoPlacement(random.Random(1)),
                                    AffinityPlacement(LeastBytesPlacement())])
def test_a_replica_whose_actors_restart_gets_new_sessions_only_when_no_other_can(policy):
    """A replica that just lost its pool (an actor died) looks emptiest, but a load placed there
    waits for its model to start: while another replica has room, it goes there."""
    view = view_with(("restarting", {"held_mib": 0}), ("busy", {"held_mib": 60, "queue": 3}))
    view.restarting(ReplicaId("restarting"), now_s=1.0)
    for _ in range(10):
        assert policy.place(request(), view).replica_id == "busy"
    alone = view_with(("restarting", {"held_mib": 0}))
    alone.restarting(ReplicaId("restarting"), now_s=1.0)
    assert policy.place(request(), alone).replica_id == "restarting"  # waits there rather than a 503
    assert alone.replica(ReplicaId("restarting")).alive


def test_a_full_heartbeat_clears_restarting():
    from control_plane.replica import ReplicaStats
    view = view_with(("r1", {}), ("r2", {}))
    view.restarting(ReplicaId("r1"), now_s=1.0)
    assert view.replica(ReplicaId("r1")).restarting
    view.heartbeat(ReplicaId("r1"), ReplicaStats(node="node-a"), now_s=2.0)
    assert not view.replica(ReplicaId("r1")).restarting


def test_a_restarting_beat_from_a_replica_not_yet_known_registers_it_taking_nothing():
    view = view_with(("r1", {}))
    view.restarting(ReplicaId("new"), now_s=1.0)  # e.g. the control plane restarted meanwhile
    replica = view.replica(ReplicaId("new"))
    assert replica.alive and replica.restarting and replica.draining  # nothing placed until a full beat
