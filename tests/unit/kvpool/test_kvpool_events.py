"""Pool events: fields, subscribers, bounded recent deque, polling by sequence number."""

from __future__ import annotations

import json

from kvpool import EventKind, KVHandle, SessionId, Tier
from kvpool.events import EventBus


def test_every_change_emits_one_event_with_its_facts(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=entry_bytes, disk=entry_bytes)
    log = event_log(pool)
    a = pool.put(make_kv(seed=1), SessionId("a"))
    b = pool.put(make_kv(seed=2), SessionId("b"))
    pool.get(a)
    pool.quantize(a, "int8")
    pool.dequantize(a)
    pool.pin(b)
    pool.unpin(b)
    pool.free(a)
    assert [(e.kind.value, e.session_id) for e in log.events] == [
        ("stored", "a"), ("spilled", "a"), ("stored", "b"), ("spilled", "b"), ("promoted", "a"),
        ("quantized", "a"), ("dequantized", "a"), ("pinned", "b"), ("unpinned", "b"), ("freed", "a")]
    seqs = [e.seq for e in log.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    stored = log.events[0]
    assert (stored.handle, stored.tier, stored.nbytes) == (a, Tier.HOST, entry_bytes)
    assert stored.layer_nbytes == (entry_bytes // 4,) * 4 and stored.timestamp_s > 0
    promoted = log.events[4]
    assert (promoted.from_tier, promoted.tier) == (Tier.DISK, Tier.HOST)
    freed = log.events[-1]
    assert freed.nbytes == entry_bytes and freed.layer_nbytes == ()
    assert json.loads(json.dumps(freed.to_json()))["kind"] == "freed"


def test_recent_deque_is_bounded_and_pollable(make_pool, make_kv):
    pool = make_pool(host=10 << 20, recent_events=3)
    handles = [pool.put(make_kv(seed=i), SessionId(f"s{i}")) for i in range(5)]
    recent = pool.events.recent()
    assert len(recent) == 3 and [e.handle for e in recent] == handles[2:]
    last = recent[-1].seq
    assert pool.events.since(last) == []
    pool.free(handles[0])
    assert [e.kind for e in pool.events.since(last)] == [EventKind.FREED]
    assert len(pool.events.recent(limit=2)) == 2


def test_unsubscribe_and_failing_subscriber(make_pool, make_kv):
    pool = make_pool(host=10 << 20)
    seen = []
    unsubscribe = pool.subscribe(seen.append)

    def broken(event):
        raise RuntimeError("subscriber bug")

    pool.subscribe(broken)
    handle = pool.put(make_kv(), SessionId("a"))  # the broken subscriber does not undo the put
    assert handle in pool and len(seen) == 1 and pool.events.subscriber_errors == 1
    unsubscribe()
    pool.free(handle)
    assert len(seen) == 1 and pool.events.subscriber_errors == 2


def test_subscriber_may_call_back_into_the_pool(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=2 * entry_bytes)
    calls = []

    def free_session_on_evict(event):
        if event.kind is EventKind.EVICTED:
            calls.append(pool.free_session(event.session_id))

    pool.subscribe(free_session_on_evict)
    a1 = pool.put(make_kv(seed=1), SessionId("a"))
    a2 = pool.put(make_kv(seed=2), SessionId("a"))
    pool.put(make_kv(seed=3), SessionId("b"))  # evicts a1; the subscriber frees the rest of session a
    assert a1 not in pool and a2 not in pool and calls == [entry_bytes]


def test_bus_delivers_in_order_to_all():
    bus = EventBus(recent_events=10)
    got = []
    bus.subscribe(lambda e: got.append(("x", e.seq)))
    bus.subscribe(lambda e: got.append(("y", e.seq)))
    for _ in range(2):
        bus.record(EventKind.STORED, KVHandle("h"), SessionId("s"), Tier.HOST, 1)
    assert got == []  # nothing is delivered before deliver()
    bus.deliver()
    assert got == [("x", 1), ("y", 1), ("x", 2), ("y", 2)]




def test_events_caused_by_a_subscriber_reach_everyone_in_order(make_pool, make_kv):
    pool = make_pool(host=10 << 20)
    second_saw = []

    def free_on_store(event):
        if event.kind is EventKind.STORED:
            pool.free(event.handle)  # causes a FREED event while STORED is still being delivered

    pool.subscribe(free_on_store)
    pool.subscribe(lambda event: second_saw.append((event.seq, event.kind.value)))
    pool.put(make_kv(), SessionId("a"))
    assert second_saw == [(1, "stored"), (2, "freed")] and len(pool) == 0
