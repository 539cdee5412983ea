"""A real DecodeActor's durable-cache paths (no model): store persists, restore reads back and
verifies (its own copy, or another replica's of its node), free deletes, a corrupted file is
refused; and the 409 a recovering session gets carries
Retry-After."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deployments.config import PlainRequestConfig
from deployments.serving.decode_actor import DecodeActor
from kvpool import KVPoolConfig
from kvpool.durable_files import PersistedCacheError, file_stem
from kvpool.synthetic import synthetic_kv

PRESS = {"name": "knorm", "compression_ratio": 0.5}


def actor_with_disk(tmp_path) -> DecodeActor:
    actor = object.__new__(DecodeActor.__ray_actor_class__)
    actor.engine = SimpleNamespace(model_name="synthetic-model", model=SimpleNamespace(dtype=torch.float32))
    actor._init_storage(KVPoolConfig(host_budget_bytes=1 << 26), PlainRequestConfig(),
                        {"dir": str(tmp_path), "budget_bytes": 1 << 26})
    return actor


def test_store_persists_and_a_new_actor_reads_it_back(tmp_path):
    ckv = synthetic_kv(compression_ratio=0.5, seed=3)
    first = actor_with_disk(tmp_path)
    first.store("s-1", ckv, False, "alice", PRESS)
    first.durable.close()
    assert first.persisted()["s-1"]["owner"] == "alice"
    second = actor_with_disk(tmp_path)  # a restarted actor: empty pool, same directory
    assert "s-1" not in second.holds()
    stored = second.restore("s-1", {"owner": "alice", "press": PRESS})
    assert stored["source"] == "persisted" and stored["stored_bytes"] == ckv.nbytes
    restored = second._cache("s-1")
    assert all(torch.equal(a.keys, b.keys) for a, b in zip(restored.layers, ckv.layers))


def test_restore_refuses_corrupt_and_mismatched_copies(tmp_path):
    actor = actor_with_disk(tmp_path)
    actor.store("s-1", synthetic_kv(seed=4), False, "alice", PRESS)
    actor.durable.close()
    with pytest.raises(PersistedCacheError) as error:
        actor.restore("s-1", {"owner": "bob", "press": PRESS})
    assert error.value.reason == "mismatch"
    path = tmp_path / f"{file_stem('s-1')}.kv"
    data = bytearray(path.read_bytes())
    data[7] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(PersistedCacheError) as error:
        actor.restore("s-1", {"owner": "alice", "press": PRESS})
    assert error.value.reason == "corrupt"


def test_restore_reads_another_replicas_copy_on_its_node_and_persists_its_own(tmp_path):
    """A replica reads the durable copy of a replica of its node whose decode actor died
    (``from_dir``), checked as its own would be, then holds a durable copy of its own."""
    ckv = synthetic_kv(compression_ratio=0.5, seed=6)
    dead = actor_with_disk(tmp_path / "replica-0")
    dead.store("s-1", ckv, False, "alice", PRESS)
    dead.durable.close()
    reader = actor_with_disk(tmp_path / "replica-1")
    with pytest.raises(PersistedCacheError) as error:
        reader.restore("s-1", {"owner": "bob", "press": PRESS}, from_dir=str(tmp_path / "replica-0"))
    assert error.value.reason == "mismatch"
    stored = reader.restore("s-1", {"owner": "alice", "press": PRESS}, from_dir=str(tmp_path / "replica-0"))
    assert stored["source"] == "persisted" and stored["stored_bytes"] == ckv.nbytes
    reader.durable.close()
    assert reader.persisted()["s-1"]["owner"] == "alice"  # its own copy, in its own directory
    again = actor_with_disk(tmp_path / "replica-1").restore("s-1", {"owner": "alice", "press": PRESS})
    assert again["stored_bytes"] == ckv.nbytes


def test_free_deletes_the_durable_copy(tmp_path):
    actor = actor_with_disk(tmp_path)
    actor.store("s-1", synthetic_kv(seed=5), False, "alice", PRESS)
    actor.free("s-1")
    actor.durable.close()
    assert actor.persisted() == {} and not list(tmp_path.glob("*.kv"))


def test_session_not_ready_with_estimate_maps_to_409_with_retry_after():
    from control_plane.errors import SessionNotReady
    from deployments.ingress.errors import to_api_error

    exc = SessionNotReady("session s is rebuilding")
    exc.retry_after_s = 7
    error = to_api_error(exc)
    assert (error.status, error.code, error.headers) == (409, "session_not_ready", {"Retry-After": "7"})
    assert to_api_error(SessionNotReady("loading")).headers is None


def test_a_replica_restarting_its_actors_maps_to_503_with_retry_after():
    """With nowhere to move a request (deployments/ingress/failover.py), a replica refusing work
    while its actors restart answers 503 with its last restart time as Retry-After."""
    from deployments.common.replica_errors import ActorsRestarting
    from deployments.ingress.errors import to_api_error

    error = to_api_error(ActorsRestarting("replica-0 is restarting its decode actor; retry shortly", 4.2))
    assert (error.status, error.code, error.headers) == (503, "replica_unavailable", {"Retry-After": "5"})
