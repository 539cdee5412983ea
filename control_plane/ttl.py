"""TTL expiry: which sessions must be freed everywhere at a given time."""

from __future__ import annotations

from typing import Iterable

from control_plane.session import SessionRecord


def expired_sessions(records: Iterable[SessionRecord], now_s: float) -> list[SessionRecord]:
    """Live, unpinned sessions idle for at least their ``ttl_s`` at ``now_s``, oldest expiry first.

    TTL counts from ``last_used_s`` (every question refreshes it). Sessions without a TTL, pinned
    sessions and DELETED ones never expire. The caller deletes them (state DELETED) and frees every
    copy, on every replica and tier.
    """
    expired = [record for record in records if record.is_expired(now_s)]
    expired.sort(key=lambda record: (record.expires_at_s(), record.id))
    return expired
