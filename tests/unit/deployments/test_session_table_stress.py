"""A real DecodeActor's storage paths under concurrent store / free / transfer import / eviction.

The decode actor's session table is written by actor methods, by transfer threads
(``transfer_import``) and by pool-event callbacks (evictions under budget pressure). After
thousands of such operations from many threads at once, the pool must hold exactly the entries
the table points to, and its byte count must be the sum of those entries (no leaked entry counted
against the budget forever, no pointer to a dropped one).
"""

from __future__ import annotations

import random
import sys
import threading

from deployments.config import PlainRequestConfig
from deployments.common.replica_errors import MissingCache
from deployments.serving.decode_actor import DecodeActor
from deployments.serving.prefix_cache import PrefixCache
from kvpool import KVPoolConfig
from kvpool.packing import pack
from kvpool.synthetic import synthetic_kv

SESSIONS = [f"sess-{i}" for i in range(4)]  # few sessions: threads collide on the same one
THREADS = 8
OPS_PER_THREAD = 400


def storage_only_actor(budget_bytes: int) -> DecodeActor:
    """The real DecodeActor class (not the Ray wrapper) with its storage built and no model."""
    actor = object.__new__(DecodeActor.__ray_actor_class__)
    actor.engine = None
    actor._init_storage(KVPoolConfig(host_budget_bytes=budget_bytes), PlainRequestConfig())
    return actor


def session_entries(actor: DecodeActor) -> set:
    return {h for h in actor.pool.handles() if not PrefixCache.owns(actor.pool.info(h).session_id)}


def test_concurrent_store_free_import_evict_keep_table_and_pool_in_step():
    caches = [synthetic_kv(original_tokens=16 + 4 * i, seed=i) for i in range(4)]
    packed = [pack(ckv) for ckv in caches]
    # room for about half the sessions: puts evict others all the time
    actor = storage_only_actor(budget_bytes=3 * max(c.nbytes for c in caches))
    errors: list[BaseException] = []
    counts = {"store": 0, "import": 0, "free": 0, "read": 0, "drain": 0}
    start = threading.Barrier(THREADS)
    kinds: list[str] = []
    actor.pool.subscribe(lambda event: kinds.append(event.kind.value))

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(OPS_PER_THREAD):
            session = rng.choice(SESSIONS)
            op = rng.choice(("store", "store", "import", "import", "free", "read", "drain"))
            try:
                if op == "store":
                    actor.store(session, rng.choice(caches), pinned=False)
                elif op == "import":
                    actor.transfer_import(session, rng.choice(packed))
                elif op == "free":
                    actor.free(session)
                elif op == "read":
                    try:
                        actor._cache(session)
                    except MissingCache:
                        pass  # evicted or never stored: the contract's answer
                else:
                    actor.drain_events()
                counts[op] += 1
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: races that need an unlucky switch get many chances
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads), "workload did not finish"
    assert errors == [], errors[:3]
    assert sum(counts.values()) == THREADS * OPS_PER_THREAD
    assert kinds.count("evicted") > 50, "the budget did not force evictions"

    table = actor.sessions.snapshot()
    assert session_entries(actor) == set(table.values())
    assert len(set(table.values())) == len(table)  # no two sessions share an entry
    held = sum(actor.pool.info(h).nbytes for h in table.values())
    assert actor.pool.usage()["host"]["held_bytes"] == held
    actor.pool.audit()
    listed = actor.holds()
    assert {s: v["handle"] for s, v in listed.items()} == {s: h.id for s, h in table.items()}
    for session in SESSIONS:
        actor.free(session)
    assert len(actor.pool) == 0 and actor.pool.usage()["host"]["held_bytes"] == 0


def test_drained_events_are_each_delivered_once_under_concurrent_appends():
    actor = storage_only_actor(budget_bytes=1 << 30)
    ckv = synthetic_kv(original_tokens=8)
    drained: list[dict] = []
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            drained.extend(actor.drain_events())

    drainer = threading.Thread(target=drain)
    drainer.start()
    for i in range(500):
        actor.store(f"s{i % 7}", ckv)
    done.set()
    drainer.join(timeout=60)
    drained.extend(actor.drain_events())
    seqs = [event["seq"] for event in drained]
    assert len(seqs) == len(set(seqs))
    assert sorted(seqs) == list(range(min(seqs), min(seqs) + len(seqs)))  # none lost in between
