"""SQLiteSessionStore: the default durable store, one SQLite file in WAL mode.

Every write is committed before the call returns, so a control plane killed at any point restarts
with every record it acknowledged. WAL lets readers (another process, ``sqlite3`` on the command
line, a restarted control plane) read while one writer writes. The version check of ``upsert`` is
a single conditional statement, so it also holds between processes sharing the file.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from control_plane.admin_events import AdminEvent, AdminEventStatus
from control_plane.errors import StaleRecord, StoreError
from control_plane.ids import AdminEventId, ReplicaId, SessionId
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from control_plane.store.base import SessionStore

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    replica TEXT,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_owner ON sessions(owner);
CREATE INDEX IF NOT EXISTS sessions_replica ON sessions(replica);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS admin_events (
    event_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    created_s REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_events_status ON admin_events(status);
"""

_UPSERT = """
INSERT INTO sessions (id, owner, replica, state, version, body) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, replica = excluded.replica, state = excluded.state,
    version = excluded.version, body = excluded.body
WHERE sessions.version < excluded.version
"""


class SQLiteSessionStore(SessionStore):
    """Store in the SQLite file at ``path`` (created with its parent folder if missing).

    ``synchronous``: ``NORMAL`` survives a killed process; ``FULL`` also survives a power cut.
    ``busy_timeout_s``: how long a write waits for another process's lock before failing.
    Raises StoreError if the file is not a kvfleet store or has another schema version.
    """

    def __init__(self, path: Path | str, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
                 busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the session store {self.path}: {exc}; check the path and its "
                             "permissions, or set control_plane.store_path to another file") from exc
        try:
            self._setup(synchronous)
        except BaseException as exc:
            self._conn.close()
            if not isinstance(exc, sqlite3.DatabaseError):
                raise
            raise StoreError(f"cannot open the session store {self.path}: {exc}; move the file away or set "
                             "control_plane.store_path to another file") from exc

    def _setup(self, synchronous: str) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StoreError(f"{self.path} cannot use WAL journaling (got {mode}); put the store on a local disk "
                             "or a volume that supports file locking")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"{self.path} has store schema {version}, this kvfleet reads {SCHEMA_VERSION}; "
                             "use a matching kvfleet version or a new store_path")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) under the thread lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- sessions -------------------------------------------------------------------------

    def upsert(self, record: SessionRecord) -> None:
        self.upsert_many([record])

    def upsert_many(self, records: Iterable[SessionRecord]) -> None:
        rows = [(r.id, r.owner, r.replica, r.state.value, r.version, r.model_dump_json()) for r in records]
        with self._transaction():
            for row in rows:
                if self._conn.execute(_UPSERT, row).rowcount == 0:
                    stored = self._conn.execute("SELECT version FROM sessions WHERE id = ?", (row[0],)).fetchone()
                    raise StaleRecord(f"session {row[0]}: stored version {stored[0]} >= {row[4]}; "
                                      "reload it with get() and apply the change again")

    def get(self, session_id: SessionId) -> SessionRecord | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return SessionRecord.model_validate_json(row[0]) if row else None

    def list(self, *, owner: str | None = None, replica: ReplicaId | None = None,
             state: SessionState | None = None) -> list[SessionRecord]:
        filters = {"owner": owner, "replica": replica, "state": state.value if state is not None else None}
        where, args = _where(filters)
        with self._lock:
            rows = self._conn.execute(f"SELECT body FROM sessions{where} ORDER BY id", args).fetchall()
        return [SessionRecord.model_validate_json(body) for (body,) in rows]

    def delete(self, session_id: SessionId) -> bool:
        with self._transaction():
            return self._conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    # ---- admin events ---------------------------------------------------------------------

    def upsert_event(self, event: AdminEvent) -> None:
        with self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO admin_events (event_id, action, status, created_s, body) VALUES (?, ?, ?, ?, ?)",
                (event.event_id, event.action, event.status.value, event.created_s, event.model_dump_json()),
            )

    def get_event(self, event_id: AdminEventId) -> AdminEvent | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM admin_events WHERE event_id = ?", (event_id,)).fetchone()
        return AdminEvent.model_validate_json(row[0]) if row else None

    def list_events(self, *, status: AdminEventStatus | None = None, action: str | None = None) -> list[AdminEvent]:
        where, args = _where({"status": status.value if status is not None else None, "action": action})
        with self._lock:
            rows = self._conn.execute(f"SELECT body FROM admin_events{where} ORDER BY created_s, event_id",
                                      args).fetchall()
        return [AdminEvent.model_validate_json(body) for (body,) in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND b = ?`` for the filters that are not None (column names are ours, not input)."""
    given = {column: value for column, value in filters.items() if value is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column in given), list(given.values())
