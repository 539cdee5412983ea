"""Session directory in one SQLite file (WAL): survives a router restart and is shared by the
processes of one LiteLLM proxy (its workers) on the same machine or volume."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from pathlib import Path

from deployments.litellm_router.directory.base import SessionDirectory, SessionRoute

_SCHEMA = """CREATE TABLE IF NOT EXISTS session_routes (
    session_id TEXT PRIMARY KEY, model_group TEXT NOT NULL, created_s REAL NOT NULL, route TEXT NOT NULL)"""


class SqliteDirectory(SessionDirectory):
    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def get(self, session_id: str) -> SessionRoute | None:
        with self._lock:
            row = self._db.execute("SELECT route FROM session_routes WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else SessionRoute(**json.loads(row[0]))

    def put(self, route: SessionRoute) -> None:
        data = json.dumps(dataclasses.asdict(route))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO session_routes VALUES (?, ?, ?, ?)",
                             (route.session_id, route.model_group, route.created_s, data))

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM session_routes WHERE session_id = ?", (session_id,)).rowcount > 0

    def routes(self, model_group: str | None = None) -> list[SessionRoute]:
        query, args = "SELECT route FROM session_routes", ()
        if model_group is not None:
            query, args = query + " WHERE model_group = ?", (model_group,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_s", args).fetchall()
        return [SessionRoute(**json.loads(r[0])) for r in rows]
