"""SessionStore contract (SQLite and memory) and SQLite durability across reopen, processes and kills."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from control_plane import (
    AdminEvent, AdminEventStatus, InvalidTransition, MemorySessionStore, ReplicaId, SessionId, SessionState,
    SQLiteSessionStore, StaleRecord, StoreError, open_store,
)

from cp_factories import config, record

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    made = SQLiteSessionStore(tmp_path / "cp.sqlite3") if request.param == "sqlite" else MemorySessionStore()
    yield made
    made.close()


def test_upsert_get_delete(store):
    rec = record("a")
    assert store.get(SessionId("a")) is None
    store.upsert(rec)
    assert store.get(SessionId("a")) == rec
    newer = rec.updated(pinned=True)
    store.upsert(newer)
    assert store.get(SessionId("a")).pinned
    assert store.delete(SessionId("a")) is True and store.delete(SessionId("a")) is False
    assert store.get(SessionId("a")) is None


def test_list_filters_by_owner_replica_and_state(store):
    store.upsert_many([
        record("a", owner="alice", replica="r1"),
        record("b", owner="alice", replica="r2", state=SessionState.SPILLED),
        record("c", owner="bob", replica="r1", state=SessionState.SPILLED),
        record("d", owner="bob", replica=None, state=SessionState.REBUILDING, tier=None),
    ])
    ids = lambda records: [r.id for r in records]  # noqa: E731
    assert ids(store.list()) == ["a", "b", "c", "d"]
    assert ids(store.list(owner="alice")) == ["a", "b"]
    assert ids(store.list(replica=ReplicaId("r1"))) == ["a", "c"]
    assert ids(store.list(state=SessionState.SPILLED)) == ["b", "c"]
    assert ids(store.list(owner="bob", state=SessionState.SPILLED, replica=ReplicaId("r1"))) == ["c"]


def test_stale_writes_are_refused(store):
    rec = record("a")
    store.upsert(rec.updated(pinned=True))  # version 1
    with pytest.raises(StaleRecord, match="stored version 1 >= 0"):
        store.upsert(rec)
    with pytest.raises(StaleRecord):
        store.upsert(rec.updated(pinned=False))  # also version 1: a concurrent writer's change
    assert store.get(SessionId("a")).pinned


def test_upsert_many_is_all_or_nothing(store):
    store.upsert(record("a").updated(pinned=True))
    with pytest.raises(StaleRecord):
        store.upsert_many([record("fresh"), record("a")])
    assert store.get(SessionId("fresh")) is None


def test_admin_events_round_trip_and_filter(store):
    first = AdminEvent.new("move", 1.0, {"session_id": "a"})
    second = AdminEvent.new("pin", 2.0)
    store.upsert_event(first)
    store.upsert_event(second)
    running = first.advance(AdminEventStatus.RUNNING, 3.0, job_id="mig_1")
    store.upsert_event(running)
    assert store.get_event(first.event_id) == running
    assert [e.action for e in store.list_events()] == ["move", "pin"]
    assert [e.event_id for e in store.list_events(status=AdminEventStatus.PENDING)] == [second.event_id]
    assert [e.event_id for e in store.list_events(action="move")] == [first.event_id]
    assert store.get_event("evt_missing") is None


def test_admin_event_status_machine():
    event = AdminEvent.new("drain", 0.0)
    done = event.advance(AdminEventStatus.RUNNING, 1.0).advance(AdminEventStatus.DONE, 2.0, moved=3)
    assert done.finished and done.detail == {"moved": 3} and done.updated_s == 2.0
    with pytest.raises(InvalidTransition, match="done"):
        done.advance(AdminEventStatus.RUNNING, 3.0)


def test_sqlite_records_survive_closing_and_reopening(tmp_path):
    path = tmp_path / "nested" / "cp.sqlite3"
    with SQLiteSessionStore(path) as first:
        rec = record("a", owner="alice").transition(SessionState.MIGRATING, target_replica=ReplicaId("r2"))
        first.upsert(rec)
        event = AdminEvent.new("move", 1.0, {"session_id": "a"})
        first.upsert_event(event)
    with SQLiteSessionStore(path) as second:
        assert second.get(SessionId("a")) == rec
        assert second.get_event(event.event_id) == event
        assert second.list(owner="alice") == [rec]


def test_sqlite_uses_wal(tmp_path):
    path = tmp_path / "cp.sqlite3"
    SQLiteSessionStore(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_records_written_by_a_killed_process_survive(tmp_path):
    path = tmp_path / "cp.sqlite3"
    result = _python(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from cp_factories import record
        from control_plane import SQLiteSessionStore, AdminEvent
        store = SQLiteSessionStore({str(path)!r})
        store.upsert_many([record(f"s{{i}}", owner="child") for i in range(50)])
        store.upsert_event(AdminEvent.new("clear", 5.0).model_copy(update={{"event_id": "evt_child"}}))
        os.kill(os.getpid(), 9)  # no close(), no atexit: as if the control plane were killed
    """)
    assert result.returncode == -9, result.stderr
    with SQLiteSessionStore(path) as store:
        assert len(store.list(owner="child")) == 50
        assert store.get_event("evt_child").action == "clear"


def test_a_subprocess_reads_what_this_process_wrote(tmp_path):
    path = tmp_path / "cp.sqlite3"
    with SQLiteSessionStore(path) as store:
        store.upsert(record("mine", owner="parent", stored_mib=3))
    result = _python(f"""
        import json
        from control_plane import SQLiteSessionStore
        store = SQLiteSessionStore({str(path)!r})
        rec = store.get("mine")
        print(json.dumps({{"owner": rec.owner, "bytes": rec.stored_bytes, "state": rec.state.value}}))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"owner": "parent", "bytes": 3 << 20, "state": "ready"}


def test_two_store_objects_on_one_file_cannot_overwrite_each_other(tmp_path):
    path = tmp_path / "cp.sqlite3"
    with SQLiteSessionStore(path) as a, SQLiteSessionStore(path) as b:
        base = record("s")
        a.upsert(base)
        b.upsert(b.get(SessionId("s")).updated(pinned=True))
        with pytest.raises(StaleRecord):
            a.upsert(base.updated(owner="late"))
        assert a.get(SessionId("s")).pinned and a.get(SessionId("s")).owner == "anonymous"


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / "cp.sqlite3"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="store_path"):
        SQLiteSessionStore(path)


def test_a_store_from_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "cp.sqlite3"
    SQLiteSessionStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="schema 99"):
        SQLiteSessionStore(path)


def test_open_store_follows_the_config(tmp_path):
    assert isinstance(open_store(config()), MemorySessionStore)
    sqlite_store = open_store(config(store="sqlite", store_path=tmp_path / "x.sqlite3"))
    assert isinstance(sqlite_store, SQLiteSessionStore) and sqlite_store.path == tmp_path / "x.sqlite3"
    sqlite_store.close()
