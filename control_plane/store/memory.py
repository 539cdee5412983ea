"""MemorySessionStore: a SessionStore in a dict, for tests. Not durable."""

from __future__ import annotations

import threading
from typing import Iterable

from control_plane.admin_events import AdminEvent, AdminEventStatus
from control_plane.errors import StaleRecord
from control_plane.ids import AdminEventId, ReplicaId, SessionId
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from control_plane.store.base import SessionStore


class MemorySessionStore(SessionStore):
    """Same contract as the SQLite store, nothing survives the process."""

    def __init__(self) -> None:
        self._records: dict[SessionId, SessionRecord] = {}
        self._events: dict[AdminEventId, AdminEvent] = {}
        self._lock = threading.Lock()

    def upsert(self, record: SessionRecord) -> None:
        with self._lock:
            self._check_version(record)
            self._records[record.id] = record

    def upsert_many(self, records: Iterable[SessionRecord]) -> None:
        records = list(records)
        with self._lock:  # all or nothing, like one SQLite transaction
            for record in records:
                self._check_version(record)
            self._records.update((r.id, r) for r in records)

    def _check_version(self, record: SessionRecord) -> None:
        stored = self._records.get(record.id)
        if stored is not None and stored.version >= record.version:
            raise StaleRecord(f"session {record.id}: stored version {stored.version} >= {record.version}; "
                              "reload it with get() and apply the change again")

    def get(self, session_id: SessionId) -> SessionRecord | None:
        return self._records.get(session_id)

    def list(self, *, owner: str | None = None, replica: ReplicaId | None = None,
             state: SessionState | None = None) -> list[SessionRecord]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.id)
        return [r for r in records if (owner is None or r.owner == owner)
                and (replica is None or r.replica == replica) and (state is None or r.state is state)]

    def delete(self, session_id: SessionId) -> bool:
        with self._lock:
            return self._records.pop(session_id, None) is not None

    def upsert_event(self, event: AdminEvent) -> None:
        with self._lock:
            self._events[event.event_id] = event

    def get_event(self, event_id: AdminEventId) -> AdminEvent | None:
        return self._events.get(event_id)

    def list_events(self, *, status: AdminEventStatus | None = None, action: str | None = None) -> list[AdminEvent]:
        with self._lock:
            events = sorted(self._events.values(), key=lambda e: (e.created_s, e.event_id))
        return [e for e in events if (status is None or e.status is status) and (action is None or e.action == action)]
