"""Loads placed between heartbeats count in the queue depth placement reads (control_plane/pending_loads.py).

Regression: two loads sent at once to an idle two-replica app both went to the same replica
(every decision saw the same heartbeat depths) and took twice one load (benchmarks/threads_cpu.py)."""

from __future__ import annotations

import random

import pytest

from control_plane import PlacementRequest, ReplicaId, SessionId, SessionState
from control_plane.placement import LeastBytesPlacement, PowerOfTwoPlacement

from cp_factories import record, stats, view_with


def place_loading(view, policy, session_id: str) -> str:
    decision = policy.place(PlacementRequest(SessionId(session_id), model="m"), view)
    view.put_session(record(session_id, state=SessionState.LOADING, replica=decision.replica_id, tier=None))
    return decision.replica_id


@pytest.mark.parametrize("policy", [PowerOfTwoPlacement(random.Random(3)), LeastBytesPlacement()],
                         ids=["power_of_two", "least_bytes"])
def test_loads_placed_before_the_next_heartbeat_spread_over_idle_replicas(policy):
    view = view_with(("r1", {}), ("r2", {}))
    assert {place_loading(view, policy, "a"), place_loading(view, policy, "b")} == {"r1", "r2"}
    assert [r.queue_depth for r in view.replicas()] == [1, 1]


def test_a_heartbeat_counts_them_itself_and_settled_loads_leave_the_count():
    view = view_with(("r1", {}), ("r2", {}))
    view.put_session(record("a", state=SessionState.LOADING, replica="r1", tier=None))
    view.put_session(record("a", state=SessionState.LOADING, replica="r1", tier=None))  # a re-put counts once
    view.put_session(record("b", state=SessionState.REBUILDING, replica="r1", tier=None))
    assert view.replica(ReplicaId("r1")).queue_depth == 2
    view.put_session(record("b", state=SessionState.READY, replica="r1"))
    assert view.replica(ReplicaId("r1")).queue_depth == 1
    view.heartbeat(ReplicaId("r1"), stats(queue=1), 1.0)  # the replica's own depth includes load a now
    assert view.replica(ReplicaId("r1")).queue_depth == 1
    view.put_session(record("a", state=SessionState.LOADING, replica="r1", tier=None))
    assert view.replica(ReplicaId("r1")).queue_depth == 1  # placed before that heartbeat: not counted twice
    view.put_session(record("c", state=SessionState.LOADING, replica="r2", tier=None))
    view.put_session(record("c", state=SessionState.LOADING, replica="r1", tier=None))  # re-placed elsewhere
    assert [r.queue_depth for r in view.replicas()] == [2, 0]
    view.put_session(record("c", state=SessionState.DELETED, replica="r1", tier=None))
    assert view.find_replica(ReplicaId("r1")).queue_depth == 1
