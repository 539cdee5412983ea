"""kvpool.durable_store: the persisted-cache format (write-behind, checksum, manifest, budget)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from kvpool.durable_files import PersistedCacheError, file_stem
from kvpool.durable_store import DurableStore
from kvpool.synthetic import synthetic_kv

PRESS = {"name": "knorm", "compression_ratio": 0.5}


def _same(a, b) -> None:
    assert a.meta == b.meta
    for x, y in zip(a.layers, b.layers):
        assert torch.equal(x.keys, y.keys) and torch.equal(x.values, y.values)


def test_round_trip_with_owner_and_press_recorded(tmp_path):
    store = DurableStore(tmp_path, 1 << 30, background=False)
    ckv = synthetic_kv(compression_ratio=0.5, seed=1)
    store.persist("s-1", ckv, owner="alice", press=PRESS)
    manifest = json.loads((tmp_path / f"{file_stem('s-1')}.json").read_text())
    assert (manifest["session_id"], manifest["owner"], manifest["press"]) == ("s-1", "alice", PRESS)
    assert manifest["nbytes"] == ckv.nbytes == os.path.getsize(tmp_path / f"{file_stem('s-1')}.kv")
    assert store.listing()["s-1"]["owner"] == "alice"
    _same(store.read("s-1", owner="alice", press=PRESS, model_id=ckv.meta.model_id, dtype=ckv.meta.dtype), ckv)


def test_a_new_process_finds_the_files(tmp_path):
    DurableStore(tmp_path, 1 << 30, background=False).persist("s-1", synthetic_kv(seed=2), owner="a", press=PRESS)
    again = DurableStore(tmp_path, 1 << 30, background=False)
    assert set(again.listing()) == {"s-1"}
    _same(again.read("s-1"), synthetic_kv(seed=2))


def test_corrupted_buffer_is_reported_corrupt(tmp_path):
    store = DurableStore(tmp_path, 1 << 30, background=False)
    store.persist("s-1", synthetic_kv(seed=3))
    path = tmp_path / f"{file_stem('s-1')}.kv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PersistedCacheError) as error:
        store.read("s-1")
    assert error.value.reason == "corrupt"


def test_truncated_buffer_and_missing_file(tmp_path):
    store = DurableStore(tmp_path, 1 << 30, background=False)
    store.persist("s-1", synthetic_kv(seed=4))
    path = tmp_path / f"{file_stem('s-1')}.kv"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PersistedCacheError, match="bytes") as error:
        store.read("s-1")
    assert error.value.reason == "corrupt"
    with pytest.raises(PersistedCacheError) as error:
        store.read("never-stored")
    assert error.value.reason == "missing"


@pytest.mark.parametrize("field,value", [("owner", "mallory"), ("press", {"name": "snapkv"}),
                                         ("model_id", "another-model"), ("dtype", "float16")])
def test_mismatch_is_refused(tmp_path, field, value):
    store = DurableStore(tmp_path, 1 << 30, background=False)
    store.persist("s-1", synthetic_kv(seed=5), owner="alice", press=PRESS)
    with pytest.raises(PersistedCacheError) as error:
        store.read("s-1", **{field: value})
    assert error.value.reason == "mismatch" and field in str(error.value)


def test_over_budget_is_not_persisted_and_drops_the_stale_file(tmp_path, caplog):
    small = synthetic_kv(seed=6, original_tokens=16)
    store = DurableStore(tmp_path, small.nbytes + 10, background=False)
    store.persist("s-1", small)
    assert "s-1" in store.listing()
    store.persist("s-1", synthetic_kv(seed=7, original_tokens=256))  # the session's cache grew past the budget
    assert store.listing() == {} and not list(tmp_path.iterdir())
    assert store.counters["persist_skipped_budget"] == 1
    assert "will be recomputed" in caplog.text


def test_write_failure_degrades_to_no_file(tmp_path, monkeypatch, caplog):
    store = DurableStore(tmp_path, 1 << 30, background=False)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kvpool.durable_store._write_atomic", disk_full)
    store.persist("s-1", synthetic_kv(seed=8))
    assert store.listing() == {} and store.counters["persist_failed_io"] == 1
    assert "No space left" in caplog.text and "recomputed" in caplog.text


def test_delete_and_write_behind(tmp_path):
    store = DurableStore(tmp_path, 1 << 30)
    for i in range(5):
        store.persist(f"s-{i}", synthetic_kv(seed=i))
    store.delete("s-3")
    store.close()  # finishes pending writes
    assert set(store.listing()) == {"s-0", "s-1", "s-2", "s-4"}
    assert len(list(tmp_path.glob("*.kv"))) == 4 and store.held_bytes == sum(
        synthetic_kv(seed=i).nbytes for i in (0, 1, 2, 4))


def test_torn_files_are_dropped_at_start(tmp_path):
    (tmp_path / "abc.kv").write_bytes(b"half")
    (tmp_path / "x.kv.tmp").write_bytes(b"tmp")
    DurableStore(tmp_path, 1 << 30, background=False)
    assert not list(tmp_path.iterdir())


def test_the_error_survives_pickling():
    """It crosses Ray process boundaries (decode actor -> replica -> control shell)."""
    import pickle

    error = pickle.loads(pickle.dumps(PersistedCacheError("corrupt", "checksum mismatch")))
    assert (error.reason, str(error)) == ("corrupt", "checksum mismatch")
