"""Pool events: every state change of an entry, as a frozen dataclass, delivered to subscribers.

Events are created under the pool's lock (so ``seq`` follows the order of the changes) and queued;
the pool delivers them after releasing its lock, one at a time and in ``seq`` order, so a
subscriber may call back into the pool. With several threads, an operation may return before a
concurrent thread has delivered its event; within one thread, events are delivered before the
operation returns unless another thread is delivering at that moment. A subscriber that raises
is logged and counted; the change it was told about has happened regardless. A bounded deque
keeps recent events for polling (``since(seq)``), the way an admin API hands out event ids.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kvpool.handles import KVHandle, SessionId, Tier

logger = logging.getLogger(__name__)


class EventKind(str, Enum):
    STORED = "stored"
    SPILLED = "spilled"
    PROMOTED = "promoted"
    RECOMPRESSED = "recompressed"
    EVICTED = "evicted"
    FREED = "freed"
    QUANTIZED = "quantized"
    DEQUANTIZED = "dequantized"
    PINNED = "pinned"
    UNPINNED = "unpinned"

    def __str__(self) -> str:
        return self.value


REMOVALS = frozenset({EventKind.EVICTED, EventKind.FREED})


@dataclass(frozen=True)
class PoolEvent:
    """One change of one entry.

    ``tier``: where the entry is after the change (for evicted/freed: where it was).
    ``nbytes``: bytes the entry holds after the change (for evicted/freed: bytes released).
    ``previous_nbytes`` / ``from_tier``: before the change (moves, re-compression, codecs).
    ``layer_nbytes``: per-layer bytes after the change (empty once removed).
    ``detail``: a short human note (e.g. ``"ratio 0.50 -> 0.75"``, ``"codec int8"``).
    """

    seq: int
    kind: EventKind
    handle: KVHandle
    session_id: SessionId
    tier: Tier
    nbytes: int
    timestamp_s: float
    from_tier: Tier | None = None
    previous_nbytes: int = 0
    layer_nbytes: tuple[int, ...] = ()
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind.value, "handle": self.handle.id, "session_id": self.session_id,
                "tier": self.tier.value, "nbytes": self.nbytes, "timestamp_s": self.timestamp_s,
                "from_tier": self.from_tier.value if self.from_tier else None,
                "previous_nbytes": self.previous_nbytes, "layer_nbytes": list(self.layer_nbytes),
                "detail": self.detail}


Subscriber = Callable[[PoolEvent], None]


class EventBus:
    """Numbers, records and delivers PoolEvents. ``record`` under the owner's lock, ``deliver`` after it."""

    def __init__(self, recent_events: int = 1024) -> None:
        self._seq = itertools.count(1)
        self._recent: collections.deque[PoolEvent] = collections.deque(maxlen=recent_events)
        self._pending: collections.deque[PoolEvent] = collections.deque()
        self._subscribers: dict[int, Subscriber] = {}
        self._subscriber_ids = itertools.count()
        self._state_lock = threading.Lock()
        # Not re-entrant on purpose: events a subscriber causes are delivered by the outer loop after
        # it returns, so every subscriber sees every event in seq order.
        self._delivery_lock = threading.Lock()
        self.subscriber_errors = 0

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every later event; returns a function that unsubscribes."""
        with self._state_lock:
            token = next(self._subscriber_ids)
            self._subscribers[token] = callback

        def unsubscribe() -> None:
            with self._state_lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def record(self, kind: EventKind, handle: KVHandle, session_id: SessionId, tier: Tier, nbytes: int,
               **fields: Any) -> PoolEvent:
        """Create the next event and queue it for delivery."""
        with self._state_lock:
            event = PoolEvent(next(self._seq), kind, handle, session_id, tier, nbytes, time.time(), **fields)
            self._recent.append(event)
            self._pending.append(event)
        return event

    def deliver(self) -> None:
        """Deliver queued events in ``seq`` order. Call it without holding the pool's lock.

        One thread delivers at a time; a thread that finds another one delivering returns at once
        and leaves its events to that one, so a slow subscriber holds up no pool operation but
        the one whose thread is delivering.
        """
        while self._has_pending():
            if not self._delivery_lock.acquire(blocking=False):
                return  # the delivering thread re-checks the queue after releasing the lock
            try:
                self._drain()
            finally:
                self._delivery_lock.release()

    def _has_pending(self) -> bool:
        with self._state_lock:
            return bool(self._pending)

    def _drain(self) -> None:
        while True:
            with self._state_lock:
                if not self._pending:
                    return
                event = self._pending.popleft()
                subscribers = list(self._subscribers.values())
            for callback in subscribers:
                try:
                    callback(event)
                except Exception:  # a broken subscriber must not undo a change that happened
                    self.subscriber_errors += 1
                    logger.exception("pool event subscriber %r failed on %s %s (session %s)",
                                     callback, event.kind, event.handle, event.session_id)

    def recent(self, limit: int | None = None) -> list[PoolEvent]:
        """The most recent events, oldest first (at most ``limit``)."""
        with self._state_lock:
            events = list(self._recent)
        return events if limit is None else events[-limit:]

    def since(self, seq: int) -> list[PoolEvent]:
        """Recent events with ``seq`` greater than ``seq`` (older ones may have left the deque)."""
        return [event for event in self.recent() if event.seq > seq]
