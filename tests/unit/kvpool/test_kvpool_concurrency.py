"""A seeded, multi-threaded random workload on a real host + disk pool.

Invariants checked: held bytes never exceed any tier's budget at any observed point (after every
event and by a sampling thread); the books always match the data (``audit``); every handle ever
returned is, at the end, either readable with its original content or reported evicted/freed by
an event and refused with that reason - none lost silently.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from kvpool import (CapacityError, EventKind, KVFleetError, KVHandle, KVPool, KVPoolConfig, RecompressConfig,
                    SessionId, UnknownHandleError)
from kvpool.packing import checksum, pack
from kvpool.recompress import knorm_recompressor
from kvpool.synthetic import synthetic_kv

WORKERS, OPS_PER_WORKER = 4, 500
CHANGES_CONTENT = {EventKind.QUANTIZED, EventKind.DEQUANTIZED, EventKind.RECOMPRESSED}


def fingerprint(ckv) -> int:
    return checksum(pack(ckv).buffer)


class Workload:
    def __init__(self, pool: KVPool, budgets: dict[str, int]) -> None:
        self.pool, self.budgets = pool, budgets
        self.lock = threading.Lock()
        self.created: dict[KVHandle, int] = {}  # handle -> fingerprint at put
        self.live: list[KVHandle] = []
        self.violations: list[str] = []
        self.events = []
        self.errors: list[BaseException] = []
        pool.subscribe(self.on_event)

    def check_budgets(self, where: str) -> None:
        for tier, usage in self.pool.usage().items():
            if not 0 <= usage["held_bytes"] <= self.budgets[tier]:
                self.violations.append(f"{where}: {tier} holds {usage['held_bytes']} of {self.budgets[tier]}")

    def on_event(self, event) -> None:
        self.events.append(event)
        self.check_budgets(f"after {event.kind} #{event.seq}")

    def pick(self, rng: random.Random) -> KVHandle | None:
        with self.lock:
            return rng.choice(self.live) if self.live else None

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            for step in range(OPS_PER_WORKER):
                self.step(rng, seed, step)
        except BaseException as error:  # surfaced by the test thread
            self.errors.append(error)

    def step(self, rng: random.Random, seed: int, step: int) -> None:
        roll = rng.random()
        if roll < 0.35 or not self.live:
            ckv = synthetic_kv(original_tokens=rng.choice([16, 32, 48]), compression_ratio=rng.choice([0, 0.25, 0.5]),
                               ragged=rng.random() < 0.5, seed=seed * 100_000 + step)
            try:
                handle = self.pool.put(ckv, SessionId(f"w{seed}-s{step % 7}"), pin=rng.random() < 0.03,
                                       codec=rng.choice([None, None, "int8"]))
            except CapacityError:
                return  # everything pinned at this moment: refused, nothing stored
            stored = ckv if self.pool_codec_is_none(handle) else None
            with self.lock:
                self.created[handle] = fingerprint(stored) if stored is not None else -1
                self.live.append(handle)
            return
        handle = self.pick(rng)
        try:
            if roll < 0.70:
                self.pool.get(handle, promote=rng.random() < 0.9)
            elif roll < 0.78:
                self.pool.free(handle)
            elif roll < 0.84:
                self.pool.unpin(handle) if self.pool.info(handle).pinned else self.pool.pin(handle)
                if rng.random() < 0.7:
                    self.pool.unpin(handle)
            elif roll < 0.92:
                self.pool.quantize(handle, "int8") if rng.random() < 0.5 else self.pool.dequantize(handle)
            else:
                self.pool.recompress(handle, rng.choice([0.5, 0.75]))
        except (UnknownHandleError, CapacityError):
            pass  # evicted/freed by another worker, or no room to grow: both are reported states
        except KVFleetError as error:
            if "kept" not in str(error):  # contention retries exhausted is allowed, anything else is not
                raise

    def pool_codec_is_none(self, handle: KVHandle) -> bool:
        try:
            return self.pool.info(handle).codec == "none"
        except UnknownHandleError:
            return False  # already evicted by a concurrent put; the event says so

    def sample(self, stop: threading.Event) -> None:
        for _ in range(100_000):
            if stop.wait(0.01):
                return
            self.check_budgets("sampler")
            try:
                self.pool.audit()
            except RuntimeError as error:
                self.violations.append(str(error))


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_random_concurrent_workload_keeps_every_invariant(tmp_path, policy):
    unit = synthetic_kv(original_tokens=32).nbytes
    budgets = {"host": 8 * unit, "disk": 12 * unit}
    config = KVPoolConfig(host_budget_bytes=budgets["host"], disk_dir=tmp_path / "disk",
                          disk_budget_bytes=budgets["disk"], eviction_policy=policy,
                          recompress=RecompressConfig(enabled=True, step_ratio=0.25, max_compression_ratio=0.75))
    pool = KVPool(config, recompressor=knorm_recompressor)
    load = Workload(pool, budgets)
    stop = threading.Event()
    sampler = threading.Thread(target=load.sample, args=(stop,), daemon=True)
    workers = [threading.Thread(target=load.worker, args=(seed,), daemon=True) for seed in range(WORKERS)]
    sampler.start()
    for thread in workers:
        thread.start()
    deadline = time.monotonic() + 240
    for thread in workers:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stop.set()
    sampler.join(timeout=10)
    assert not any(thread.is_alive() for thread in workers), "workload did not finish in time"
    assert not load.errors, load.errors[:3]
    assert not load.violations, load.violations[:5]
    pool.audit()

    events_by_handle: dict[KVHandle, list] = {}
    for event in load.events:
        events_by_handle.setdefault(event.handle, []).append(event)
    assert len(load.created) > WORKERS * OPS_PER_WORKER * 0.25
    removed = 0
    for handle, print_at_put in load.created.items():
        history = events_by_handle[handle]
        assert history[0].kind is EventKind.STORED
        removals = [e for e in history if e.kind in (EventKind.EVICTED, EventKind.FREED)]
        if handle in pool:
            assert not removals
            ckv = pool.get(handle, promote=False)  # a promotion now would move others under our feet
            if print_at_put != -1 and not any(e.kind in CHANGES_CONTENT for e in history):
                assert fingerprint(ckv) == print_at_put
        else:
            assert len(removals) == 1 and removals[0] is history[-1], f"{handle} vanished without an event"
            with pytest.raises(UnknownHandleError) as error:
                pool.get(handle)
            assert error.value.reason == removals[0].kind.value
            removed += 1
    assert removed > 0  # the workload really was under pressure
    kinds = {event.kind for event in load.events}
    assert {EventKind.SPILLED, EventKind.PROMOTED, EventKind.EVICTED, EventKind.FREED} <= kinds
    assert {tier.value: n for tier, n in pool.stats.tier_bytes().items()} == {
        tier: usage["held_bytes"] for tier, usage in pool.usage().items()}
    pool.close()
