"""One page of a caller's sessions: filters, order and cursor pagination (``GET /v1/sessions``).

OpenAI list style: ``limit`` items after the cursor ``after`` (a session id from the previous
page), ``order`` by creation time (``desc``: newest first, OpenAI's default), filters ``state``
and ``model``; the page says ``has_more``. The cursor is positional (creation time, id), so a
session deleted between two pages does not break the walk: its id still works as ``after`` while
its record (a DELETED tombstone) is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from control_plane.errors import ControlPlaneError
from control_plane.session import SessionRecord
from control_plane.states import SessionState

MAX_PAGE = 1000


class InvalidListing(ControlPlaneError, ValueError):
    """A bad listing parameter (HTTP 400): limit out of range, unknown cursor."""


@dataclass(frozen=True)
class SessionPage:
    records: list[SessionRecord]
    has_more: bool


def page_sessions(records: Iterable[SessionRecord], *, limit: int = 100, after: str | None = None,
                  state: SessionState | None = None, model: str | None = None,
                  order: Literal["asc", "desc"] = "desc") -> SessionPage:
    """The page of ``records`` (one owner's, DELETED ones included: they are skipped unless
    ``state`` asks for them, but serve as cursors). Raises InvalidListing."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidListing(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    everything = sorted(records, key=_key, reverse=order == "desc")
    start = 0
    if after is not None:
        position = next((i for i, r in enumerate(everything) if r.id == after), None)
        if position is None:
            raise InvalidListing(f"after: no session {after!r} among this API key's sessions")
        start = position + 1
    wanted = state or None
    matching = [r for r in everything[start:]
                if (r.state is wanted if wanted is not None else r.state is not SessionState.DELETED)
                and (model is None or r.model == model)]
    return SessionPage(matching[:limit], len(matching) > limit)


def _key(record: SessionRecord) -> tuple[float, str]:
    return record.created_s, record.id
