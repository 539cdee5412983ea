"""KVPool basics: put/get/free by handle, tiers, spilling, promotion, pinning, capacity errors."""

from __future__ import annotations

import pytest
import torch
from kvpool_helpers import assert_identical

from kvpool import CapacityError, EventKind, KVHandle, SessionId, Tier, UnknownHandleError

S = SessionId


def test_put_get_free_round_trip(make_pool, make_kv, event_log):
    pool = make_pool(host=10 << 20)
    log = event_log(pool)
    ckv = make_kv(ragged=True, ratio=0.5)
    handle = pool.put(ckv, S("a"))
    assert isinstance(handle, KVHandle) and handle in pool and len(pool) == 1
    assert_identical(pool.get(handle), ckv)
    info = pool.info(handle)
    assert (info.session_id, info.tier, info.nbytes, info.pinned) == ("a", Tier.HOST, ckv.nbytes, False)
    assert pool.usage()["host"]["held_bytes"] == ckv.nbytes
    assert pool.free(handle) == ckv.nbytes
    assert handle not in pool and pool.usage()["host"]["held_bytes"] == 0
    assert log.kinds(handle) == ["stored", "freed"]
    with pytest.raises(UnknownHandleError) as error:
        pool.get(handle)
    assert error.value.reason == "freed" and "freed" in str(error.value)


def test_unknown_handle_says_so(make_pool):
    pool = make_pool(host=1 << 20)
    with pytest.raises(KeyError) as error:
        pool.info(KVHandle("nope"))
    assert error.value.reason == "unknown" and "never stored here" in str(error.value)


def test_host_only_pool_evicts_least_recent_and_reports_it(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=2 * entry_bytes)
    log = event_log(pool)
    first, second = pool.put(make_kv(seed=1), S("s1")), pool.put(make_kv(seed=2), S("s2"))
    pool.get(first)  # first is now the most recent
    third = pool.put(make_kv(seed=3), S("s3"))
    assert first in pool and third in pool and second not in pool
    evicted = [e for e in log.events if e.kind is EventKind.EVICTED]
    assert [(e.handle, e.session_id, e.nbytes, e.tier) for e in evicted] == [(second, "s2", entry_bytes, Tier.HOST)]
    with pytest.raises(UnknownHandleError) as error:
        pool.get(second)
    assert error.value.reason == "evicted" and "re-prefilling" in str(error.value)
    assert pool.usage()["host"]["held_bytes"] == 2 * entry_bytes
    assert pool.audit() == {"host": 2 * entry_bytes}


def test_spill_to_disk_and_round_trip_bit_identical(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=entry_bytes, disk=4 * entry_bytes)
    log = event_log(pool)
    caches = [make_kv(seed=1), make_kv(seed=2, ragged=True, ratio=0.25), make_kv(seed=3, dtype=torch.bfloat16)]
    handles = [pool.put(ckv, S(f"s{i}")) for i, ckv in enumerate(caches)]
    assert [pool.info(h).tier for h in handles] == [Tier.DISK, Tier.DISK, Tier.HOST]
    spills = [e for e in log.events if e.kind is EventKind.SPILLED]
    assert [(e.handle, e.from_tier, e.tier) for e in spills] == [(handles[0], Tier.HOST, Tier.DISK),
                                                                 (handles[1], Tier.HOST, Tier.DISK)]
    disk_files = sorted(p.suffix for p in pool.config.disk_dir.iterdir())
    assert disk_files == [".json", ".json", ".kv", ".kv"]
    for handle, ckv in zip(handles, caches):
        assert_identical(pool.get(handle, promote=False), ckv)
    assert pool.audit() == {"host": caches[2].nbytes, "disk": caches[0].nbytes + caches[1].nbytes}


def test_get_promotes_by_swapping_without_evicting(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=entry_bytes, disk=entry_bytes)
    log = event_log(pool)
    cold = pool.put(make_kv(seed=1), S("cold"))
    hot = pool.put(make_kv(seed=2), S("hot"))
    assert pool.info(cold).tier is Tier.DISK
    assert_identical(pool.get(cold), make_kv(seed=1))
    assert pool.info(cold).tier is Tier.HOST and pool.info(hot).tier is Tier.DISK
    assert [e.kind.value for e in log.events[-2:]] == ["spilled", "promoted"]
    assert not [e for e in log.events if e.kind is EventKind.EVICTED]
    assert pool.audit() == {"host": entry_bytes, "disk": entry_bytes}


def test_get_without_promotion_leaves_entry_where_it_is(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=entry_bytes, disk=2 * entry_bytes)
    cold = pool.put(make_kv(seed=1), S("a"))
    pool.put(make_kv(seed=2), S("b"))
    pool.get(cold, promote=False)
    assert pool.info(cold).tier is Tier.DISK


def test_pinned_entries_survive_pressure(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=2 * entry_bytes, disk=entry_bytes)
    pinned = pool.put(make_kv(seed=0), S("pinned"), pin=True)
    for seed in range(1, 8):
        pool.put(make_kv(seed=seed), S(f"s{seed}"))
        assert pool.info(pinned).tier is Tier.HOST
    assert_identical(pool.get(pinned), make_kv(seed=0))
    assert len(pool) == 3  # pinned + one more in host + one on disk


def test_pin_later_and_unpin(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=entry_bytes)
    log = event_log(pool)
    handle = pool.put(make_kv(seed=0), S("a"))
    pool.pin(handle)
    with pytest.raises(CapacityError):
        pool.put(make_kv(seed=1), S("b"))
    pool.unpin(handle)
    pool.put(make_kv(seed=1), S("b"))
    assert handle not in pool
    assert log.kinds(handle) == ["stored", "pinned", "unpinned", "evicted"]


def test_capacity_error_when_everything_is_pinned(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=2 * entry_bytes, disk=entry_bytes)
    log = event_log(pool)
    handles = [pool.put(make_kv(seed=i), S(f"s{i}"), pin=True) for i in range(3)]
    before = (pool.usage(), len(log.events))
    with pytest.raises(CapacityError) as error:
        pool.put(make_kv(seed=9), S("late"))
    message = str(error.value)
    assert f"{entry_bytes} bytes" in message and "0 bytes free" in message and "pinned" in message
    assert "host" in message and "disk" in message
    assert (pool.usage(), len(log.events)) == before  # nothing moved, nothing stored
    assert all(h in pool for h in handles)


def test_entry_larger_than_every_budget_is_refused(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=entry_bytes // 2, disk=entry_bytes // 2)
    with pytest.raises(CapacityError, match="cannot store"):
        pool.put(make_kv(), S("big"))
    assert len(pool) == 0


def test_entry_too_big_for_host_goes_straight_to_disk(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=entry_bytes // 2, disk=entry_bytes)
    handle = pool.put(make_kv(), S("a"))
    assert pool.info(handle).tier is Tier.DISK
    assert_identical(pool.get(handle), make_kv())  # no faster tier can take it: stays on disk
    assert pool.info(handle).tier is Tier.DISK and pool.counters["promotions_refused"] == 1


def test_free_session_and_handles(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=4 * entry_bytes, disk=4 * entry_bytes)
    a1, a2 = pool.put(make_kv(seed=1), S("a")), pool.put(make_kv(seed=2), S("a"))
    b = pool.put(make_kv(seed=3), S("b"))
    assert set(pool.handles(S("a"))) == {a1, a2} and set(pool.handles()) == {a1, a2, b}
    assert pool.free_session(S("a")) == 2 * entry_bytes
    assert pool.handles() == [b] and pool.free_session(S("nobody")) == 0


def test_close_frees_everything_and_removes_files(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=entry_bytes, disk=2 * entry_bytes)
    log = event_log(pool)
    for i in range(3):
        pool.put(make_kv(seed=i), S(f"s{i}"))
    pool.close()
    assert len(pool) == 0 and list(pool.config.disk_dir.iterdir()) == []
    assert log.kinds().count("freed") == 3


def test_put_with_codec_and_decoded_get(make_pool, make_kv):
    pool = make_pool(host=1 << 20)
    ckv = make_kv(ratio=0.5)
    handle = pool.put(ckv, S("a"), codec="int8")
    assert pool.info(handle).codec == "int8" and pool.info(handle).nbytes < ckv.nbytes / 2
    decoded = pool.get(handle, decoded=True)
    assert decoded.meta.codec == "none" and decoded.layers[0].keys.dtype == torch.float32
    assert torch.allclose(decoded.layers[0].keys, ckv.layers[0].keys, atol=0.05)


def test_default_codec_from_config(make_pool, make_kv):
    pool = make_pool(host=1 << 20, default_codec="int8")
    assert pool.info(pool.put(make_kv(), S("a"))).codec == "int8"
