"""AdminEvent: every admin action returns an event id whose status can be polled (LMCache-style).

Events are stored durably next to the session records, so a poll still answers after the control
plane restarts.
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import InvalidTransition, UnknownAdminEvent
from control_plane.ids import AdminEventId, new_admin_event_id


class AdminEventStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


_A = AdminEventStatus
EVENT_TRANSITIONS: Mapping[AdminEventStatus, frozenset[AdminEventStatus]] = MappingProxyType({
    _A.PENDING: frozenset({_A.RUNNING, _A.DONE, _A.FAILED}),
    _A.RUNNING: frozenset({_A.DONE, _A.FAILED}),
    _A.DONE: frozenset(),
    _A.FAILED: frozenset(),
})


class AdminEvent(BaseModel):
    """One admin action: ``action`` (``move``, ``pin``, ``drain``, ``clear`` ...), its ``status``,
    a JSON ``detail`` (arguments, then results or the error), and when it was created/updated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: AdminEventId
    action: str
    status: AdminEventStatus = AdminEventStatus.PENDING
    detail: dict[str, Any] = Field(default_factory=dict)
    created_s: float
    updated_s: float

    @classmethod
    def new(cls, action: str, now_s: float, detail: dict[str, Any] | None = None) -> "AdminEvent":
        return cls(event_id=new_admin_event_id(), action=action, detail=detail or {}, created_s=now_s,
                   updated_s=now_s)

    @property
    def finished(self) -> bool:
        return self.status in (AdminEventStatus.DONE, AdminEventStatus.FAILED)

    def advance(self, status: AdminEventStatus, now_s: float, **detail: Any) -> "AdminEvent":
        """A copy in ``status`` with ``detail`` merged in; raises InvalidTransition (e.g. done -> running)."""
        if status not in EVENT_TRANSITIONS[self.status]:
            raise InvalidTransition(f"admin event {self.event_id} is {self.status.value}; it cannot become "
                                    f"{status.value}")
        return self.model_copy(update={"status": status, "updated_s": now_s, "detail": {**self.detail, **detail}})


class AdminEventLog:
    """The control plane's admin events (a mixin: needs ``self.store`` and ``self.clock``)."""

    def begin_admin_event(self, action: str, **detail: Any) -> AdminEvent:
        """Record a PENDING admin action and return it; poll it by ``event_id``."""
        event = AdminEvent.new(action, self.clock(), detail)
        self.store.upsert_event(event)
        return event

    def update_admin_event(self, event_id: AdminEventId, status: AdminEventStatus, **detail: Any) -> AdminEvent:
        """Move an admin event on (running, done, failed), merging ``detail``; persisted."""
        event = self.admin_event(event_id).advance(status, self.clock(), **detail)
        self.store.upsert_event(event)
        return event

    def admin_event(self, event_id: AdminEventId) -> AdminEvent:
        event = self.store.get_event(event_id)
        if event is None:
            raise UnknownAdminEvent(f"no admin event {event_id!r}")
        return event
