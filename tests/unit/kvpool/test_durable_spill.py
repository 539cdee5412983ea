"""Spilling to the disk tier reuses the durable files (issue 27): a session cache the durable store
already holds byte for byte is hard-linked, not written again, and its bytes are counted once (by
the durable budget); without a usable durable file (missing, corrupt, another cache) the disk tier
writes its own file as before."""

from __future__ import annotations

import torch

from kvpool.config import KVPoolConfig
from kvpool.durable_files import file_stem
from kvpool.durable_store import DurableStore
from kvpool.handles import SessionId, Tier
from kvpool.packing import checksum_of, pack
from kvpool.pool import KVPool
from kvpool.synthetic import synthetic_kv
from tests.unit.kvpool.kvpool_helpers import assert_identical

NBYTES = synthetic_kv(seed=0).nbytes  # every synthetic_kv here has the same shape


def _setup(tmp_path, disk_budget: int = 4 * NBYTES) -> tuple[KVPool, DurableStore]:
    durable = DurableStore(tmp_path / "durable", 1 << 30, background=False)
    pool = KVPool(KVPoolConfig(host_budget_bytes=NBYTES, disk_dir=tmp_path / "spill", disk_budget_bytes=disk_budget),
                  durable=durable)
    return pool, durable


def _spill_files(tmp_path) -> list:
    return sorted((tmp_path / "spill").glob("*.kv"))


def _durable_file(tmp_path, session: str):
    return tmp_path / "durable" / f"{file_stem(session)}.kv"


def test_checksum_of_equals_the_packed_checksum():
    for ckv in (synthetic_kv(seed=1), synthetic_kv(seed=2, ragged=True, compression_ratio=0.5),
                synthetic_kv(seed=3, dtype=torch.bfloat16)):
        assert checksum_of(ckv) == pack(ckv).manifest["checksum"]


def test_a_spill_of_a_persisted_cache_links_the_durable_file_and_counts_its_bytes_once(tmp_path):
    pool, durable = _setup(tmp_path, disk_budget=1)  # no room of its own: only a shared spill fits
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    handle = pool.put(first, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))  # host holds one cache: s-1 spills

    assert pool.info(handle).tier is Tier.DISK
    [spill] = _spill_files(tmp_path)
    assert spill.samefile(_durable_file(tmp_path, "s-1"))  # the same inode: no second copy written
    assert pool.counters["spills_shared"] == 1 and durable.counters["spill_shared"] == 1
    assert pool.usage()["disk"]["held_bytes"] == 0 and durable.held_bytes == NBYTES
    assert pool.audit() == {"host": NBYTES, "disk": 0}
    assert_identical(pool.get(handle, promote=False), first)  # read back from the shared file


def test_freeing_a_shared_spill_keeps_the_durable_copy_and_deleting_the_copy_keeps_the_spill(tmp_path):
    pool, durable = _setup(tmp_path)
    first, second = synthetic_kv(seed=1), synthetic_kv(seed=2)
    durable.persist("s-1", first)
    durable.persist("s-2", second)
    h1 = pool.put(first, SessionId("s-1"))
    h2 = pool.put(second, SessionId("s-2"))
    pool.put(synthetic_kv(seed=3), SessionId("s-3"))  # s-2 spills too (shared)
    assert pool.counters["spills_shared"] == 2

    pool.free(h1)
    assert _durable_file(tmp_path, "s-1").exists()
    assert_identical(durable.read("s-1"), first)

    durable.delete("s-2")  # the session's durable copy goes first (as DecodeActor.free does)
    assert_identical(pool.get(h2, promote=False), second)  # the link still holds the bytes
    pool.audit()


def test_a_promoted_shared_spill_drops_only_its_link(tmp_path):
    pool, durable = _setup(tmp_path)
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    h1 = pool.put(first, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    assert_identical(pool.get(h1), first)  # promoted back to host; s-2 (not persisted) spills, written

    assert pool.info(h1).tier is Tier.HOST
    [spill] = _spill_files(tmp_path)
    assert not spill.samefile(_durable_file(tmp_path, "s-1"))
    assert pool.usage()["disk"]["held_bytes"] == NBYTES
    assert durable.read("s-1").meta == first.meta
    pool.audit()


def test_without_a_durable_file_the_spill_is_written(tmp_path):
    pool, durable = _setup(tmp_path)
    h1 = pool.put(synthetic_kv(seed=1), SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    assert pool.info(h1).tier is Tier.DISK
    assert pool.counters.get("spills_shared", 0) == 0 and durable.counters["spill_not_shared_missing"] == 1
    assert pool.usage()["disk"]["held_bytes"] == NBYTES
    assert_identical(pool.get(h1, promote=False), synthetic_kv(seed=1))


def test_a_corrupted_durable_file_is_not_shared(tmp_path):
    pool, durable = _setup(tmp_path)
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    path = _durable_file(tmp_path, "s-1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    h1 = pool.put(first, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))

    assert durable.counters["spill_not_shared_corrupt"] == 1 and pool.counters.get("spills_shared", 0) == 0
    [spill] = _spill_files(tmp_path)
    assert not spill.samefile(path)
    assert_identical(pool.get(h1, promote=False), first)  # the pool's own bytes, not the corrupted file
    assert pool.usage()["disk"]["held_bytes"] == NBYTES


def test_a_durable_file_of_another_cache_of_the_session_is_not_shared(tmp_path):
    pool, durable = _setup(tmp_path)
    durable.persist("s-1", synthetic_kv(seed=1))  # e.g. before a re-compression or a new turn
    now = synthetic_kv(seed=9)
    h1 = pool.put(now, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    assert durable.counters["spill_not_shared_different"] == 1
    assert_identical(pool.get(h1, promote=False), now)


def test_a_pending_durable_write_is_not_shared(tmp_path):
    pool, durable = _setup(tmp_path)
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    durable._writer = object()  # as if the writer thread had not reached the next write yet
    durable.persist("s-1", first)
    durable._writer = None
    h1 = pool.put(first, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    assert durable.counters["spill_not_shared_pending"] == 1 and pool.info(h1).tier is Tier.DISK
    assert pool.usage()["disk"]["held_bytes"] == NBYTES


def test_disk_eviction_skips_shared_spills_which_free_no_bytes(tmp_path):
    pool, durable = _setup(tmp_path, disk_budget=NBYTES)  # room for one file of its own
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    h1 = pool.put(first, SessionId("s-1"))
    h2 = pool.put(synthetic_kv(seed=2), SessionId("s-2"))  # s-1 spills, shared (0 bytes counted)
    pool.put(synthetic_kv(seed=3), SessionId("s-3"))  # s-2 spills, written (the disk budget is full)
    pool.put(synthetic_kv(seed=4), SessionId("s-4"))  # s-3 must spill: s-2 is evicted, not the shared s-1
    assert h1 in pool and h2 not in pool
    assert pool.usage()["disk"] == {"budget_bytes": NBYTES, "held_bytes": NBYTES, "free_bytes": 0, "entries": 2,
                                    "pinned_bytes": 0}
    pool.audit()


def test_quantizing_a_shared_spill_writes_its_own_file_and_keeps_the_durable_copy(tmp_path):
    pool, durable = _setup(tmp_path)
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    h1 = pool.put(first, SessionId("s-1"))
    pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    info = pool.quantize(h1, "int8")
    assert info.tier is Tier.DISK and pool.usage()["disk"]["held_bytes"] == info.nbytes
    assert_identical(durable.read("s-1"), first)
    pool.audit()


def test_a_spill_never_waits_for_the_durable_writer(tmp_path):
    """The pool spills under its own lock: while the durable store's writer holds its files, the
    spill writes its own file at once instead of waiting (counted ``spill_not_shared_busy``)."""
    pool, durable = _setup(tmp_path)
    first = synthetic_kv(seed=1)
    durable.persist("s-1", first)
    handle = pool.put(first, SessionId("s-1"))
    with durable._io:  # a write or delete in progress
        pool.put(synthetic_kv(seed=2), SessionId("s-2"))
    assert pool.info(handle).tier is Tier.DISK and durable.counters["spill_not_shared_busy"] == 1
    [spill] = _spill_files(tmp_path)
    assert not spill.samefile(_durable_file(tmp_path, "s-1"))
    assert_identical(pool.get(handle, promote=False), first)
