"""SessionStore: the durable home of session records and admin events.

The control plane can be killed and restarted at any moment: everything it must not forget
(every session's owner, model, press, context, state and placement; every admin event) is written
here before the change is acted on. Implementations: ``sqlite`` (default, one file) and ``memory``
(tests). One contract test suite runs against both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable

from control_plane.admin_events import AdminEvent, AdminEventStatus
from control_plane.ids import AdminEventId, ReplicaId, SessionId
from control_plane.session import SessionRecord
from control_plane.states import SessionState


class SessionStore(ABC):
    """Session records keyed by id, with optimistic concurrency on ``record.version``; admin events
    keyed by event id. Methods are safe to call from several threads."""

    @abstractmethod
    def upsert(self, record: SessionRecord) -> None:
        """Insert or replace. Raises StaleRecord if the stored version is >= ``record.version``
        (someone else wrote a newer record: reload with ``get`` and retry)."""

    def upsert_many(self, records: Iterable[SessionRecord]) -> None:
        """Upsert several records (one transaction where the backend has them); same StaleRecord rule."""
        for record in records:
            self.upsert(record)

    @abstractmethod
    def get(self, session_id: SessionId) -> SessionRecord | None:
        """The stored record, or None."""

    @abstractmethod
    def list(self, *, owner: str | None = None, replica: ReplicaId | None = None,
             state: SessionState | None = None) -> list[SessionRecord]:
        """Records matching every given filter (all records when none is given), ordered by id."""

    @abstractmethod
    def delete(self, session_id: SessionId) -> bool:
        """Remove the record; True if there was one."""

    @abstractmethod
    def upsert_event(self, event: AdminEvent) -> None:
        """Insert or replace an admin event."""

    @abstractmethod
    def get_event(self, event_id: AdminEventId) -> AdminEvent | None:
        """The stored admin event, or None."""

    @abstractmethod
    def list_events(self, *, status: AdminEventStatus | None = None, action: str | None = None) -> list[AdminEvent]:
        """Admin events matching the filters, oldest first."""

    def close(self) -> None:
        """Release files and connections; the store must not be used afterwards."""

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
