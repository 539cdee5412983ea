"""The control plane fed by a real kvpool.KVPool (CPU: host + disk tiers) through its event bus."""

from __future__ import annotations

import pytest

from control_plane import (
    ControlPlane, NodeId, ReplicaId, ReplicaStats, SessionContext, SessionNotReady, SessionState, Tier,
)
from kvpool import KVHandle, KVPool, KVPoolConfig
from kvpool.synthetic import synthetic_kv

from cp_factories import config

R1 = ReplicaId("r1")
ENTRY_BYTES = synthetic_kv(seed=0).nbytes


def replica_with_pool(tmp_path, *, disk: bool) -> tuple[ControlPlane, KVPool]:
    pool_config = KVPoolConfig(host_budget_bytes=int(ENTRY_BYTES * 2.5), disk_dir=tmp_path / "disk" if disk else None,
                               disk_budget_bytes=ENTRY_BYTES * 10 if disk else 0)
    pool = KVPool(pool_config)
    cp = ControlPlane(config(pressure_threshold=0.99, pressure_target=0.9))
    capacity = {Tier(name): usage["budget_bytes"] for name, usage in pool.usage().items()}
    cp.heartbeat(R1, ReplicaStats(node=NodeId("n1"), capacity_bytes=capacity))
    pool.subscribe(lambda event: cp.apply_pool_event(R1, event))  # what the Serve shell wires up
    return cp, pool


def load(cp: ControlPlane, pool: KVPool, seed: int):
    record, decision = cp.open_session(model="synthetic-model", context=SessionContext(text=f"doc {seed}"))
    assert decision.replica_id == R1
    kv = synthetic_kv(seed=seed)
    handle = pool.put(kv, record.id)
    return cp.mark_loaded(record.id, read_tokens=128, kept_tokens=128, stored_bytes=kv.nbytes), handle


def held_by_pool(pool: KVPool) -> dict[Tier, int]:
    return {Tier(name): usage["held_bytes"] for name, usage in pool.usage().items()}


def held_in_view(cp: ControlPlane, pool: KVPool) -> dict[Tier, int]:
    held = cp.view.replica(R1).held_bytes
    return {Tier(name): held.get(Tier(name)) for name in pool.usage()}


def test_view_bytes_and_states_follow_the_pool(tmp_path):
    cp, pool = replica_with_pool(tmp_path, disk=True)
    assert cp.view.replica(R1).primary_tier is Tier.HOST  # a CPU replica: host is its fastest tier
    first, _ = load(cp, pool, 0)
    second, second_handle = load(cp, pool, 1)
    assert first.state is SessionState.READY and first.tier is Tier.HOST
    third, _ = load(cp, pool, 2)  # the host tier overflows: the least recently used entry spills to disk
    assert held_in_view(cp, pool) == held_by_pool(pool)
    spilled = cp.view.session(first.id)
    assert (spilled.state, spilled.tier) == (SessionState.SPILLED, Tier.DISK)
    assert cp.locate(first.id) == R1  # a spilled session is still served (the pool promotes it)

    info = pool.quantize(second_handle)
    assert cp.view.session(second.id).stored_bytes == info.nbytes < ENTRY_BYTES
    assert held_in_view(cp, pool) == held_by_pool(pool)

    pool.free_session(third.id)
    assert held_in_view(cp, pool) == held_by_pool(pool)
    assert cp.view.copies_of(third.id) == []
    pool.close()


def test_events_forwarded_as_json_give_the_same_view(tmp_path):
    cp, pool = replica_with_pool(tmp_path, disk=True)
    mirror = ControlPlane(config())  # fed with PoolEvent.to_json(), as events arrive over Ray
    mirror.heartbeat(R1, ReplicaStats(node=NodeId("n1"), capacity_bytes={
        Tier(name): usage["budget_bytes"] for name, usage in pool.usage().items()}))
    pool.subscribe(lambda event: mirror.apply_pool_event(R1, event.to_json()))
    for seed in range(3):
        load(cp, pool, seed)
    assert mirror.view.replica(R1).held_bytes == cp.view.replica(R1).held_bytes
    assert sorted((e.handle, e.tier, e.stored_bytes) for e in mirror.view.entries_on(R1)) == \
        sorted((e.handle, e.tier, e.stored_bytes) for e in cp.view.entries_on(R1))
    pool.close()


def test_an_evicted_session_is_rebuilt(tmp_path):
    cp, pool = replica_with_pool(tmp_path, disk=False)
    first, _ = load(cp, pool, 0)
    second, _ = load(cp, pool, 1)
    load(cp, pool, 2)  # no disk tier: the oldest entry is evicted outright
    assert held_in_view(cp, pool) == held_by_pool(pool)
    lost = cp.view.session(first.id)
    assert lost.state is SessionState.REBUILDING and lost.replica is None
    with pytest.raises(SessionNotReady):
        cp.locate(first.id)
    assert cp.tick().plans == []  # the pool is full: the rebuild waits for room instead of evicting
    _, entries = cp.delete_session(second.id)
    for entry in entries:
        pool.free(KVHandle(entry.handle))
    plans = cp.tick().plans
    assert [(p.session_id, p.method.value, p.target) for p in plans] == [(first.id, "rebuild", R1)]
    pool.close()
