"""Access statistics of a KVPool: per session and per layer bytes and hits, last access, time series.

The pool feeds every event it records (``observe``) and every read (``record_hit`` /
``record_miss``). Everything is bounded: time series keep ``series_len`` samples, and sessions
that no longer hold anything are forgotten oldest-first beyond ``max_idle_sessions``.
``snapshot()`` returns plain JSON-able data (the shape ``kvpool.stats_cli`` and the admin API use).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kvpool.events import REMOVALS, EventKind, PoolEvent
from kvpool.handles import KVHandle, SessionId, Tier

SNAPSHOT_VERSION = 1
_PIN_KINDS = frozenset({EventKind.PINNED, EventKind.UNPINNED})


@dataclass
class _SessionStats:
    series_len: int
    handles: dict[KVHandle, tuple[int, ...]] = field(default_factory=dict)  # handle -> per-layer bytes
    layer_hits: list[int] = field(default_factory=list)
    hits: int = 0
    last_access_s: float = 0.0
    series: collections.deque = field(init=False)

    def __post_init__(self) -> None:
        self.series = collections.deque(maxlen=self.series_len)  # (timestamp_s, bytes, hits)

    def layer_bytes(self) -> list[int]:
        width = max((len(layers) for layers in self.handles.values()), default=0)
        totals = [0] * width
        for layers in self.handles.values():
            for i, nbytes in enumerate(layers):
                totals[i] += nbytes
        return totals

    def nbytes(self) -> int:
        return sum(sum(layers) for layers in self.handles.values())

    def sample(self, now_s: float) -> None:
        self.series.append((now_s, self.nbytes(), self.hits))


class AccessStats:
    """Thread-safe; cheap enough to update on every pool operation."""

    def __init__(self, series_len: int = 256, max_idle_sessions: int = 1024) -> None:
        self._series_len = series_len
        self._max_idle_sessions = max_idle_sessions
        self._lock = threading.Lock()
        self._sessions: collections.OrderedDict[SessionId, _SessionStats] = collections.OrderedDict()
        self._owner: dict[KVHandle, SessionId] = {}
        self._tier_bytes: collections.Counter[str] = collections.Counter()
        self._totals: collections.Counter[str] = collections.Counter()
        self._series: collections.deque = collections.deque(maxlen=series_len)  # (t, hits, misses, {tier: bytes})

    def observe(self, event: PoolEvent) -> None:
        """Account one pool event (bytes per session, layer and tier)."""
        with self._lock:
            self._totals[event.kind.value] += 1
            session = self._session(event.session_id)
            if event.kind is EventKind.STORED:
                self._owner[event.handle] = event.session_id
                self._tier_bytes[event.tier.value] += event.nbytes
                session.handles[event.handle] = event.layer_nbytes
            elif event.kind in REMOVALS:
                self._owner.pop(event.handle, None)
                self._tier_bytes[event.tier.value] -= event.nbytes
                session.handles.pop(event.handle, None)
            elif event.kind not in _PIN_KINDS:  # moved or re-encoded: previous_nbytes left from_tier (or tier)
                self._tier_bytes[(event.from_tier or event.tier).value] -= event.previous_nbytes
                self._tier_bytes[event.tier.value] += event.nbytes
                session.handles[event.handle] = event.layer_nbytes
            session.sample(event.timestamp_s)
            self._sample(event.timestamp_s)
            self._forget_idle_sessions()

    def record_hit(self, handle: KVHandle) -> None:
        """A read of ``handle``: one hit for its session and for each of its layers."""
        now = time.time()
        with self._lock:
            self._totals["hits"] += 1
            session_id = self._owner.get(handle)
            if session_id is None:
                return
            session = self._session(session_id)
            session.hits += 1
            session.last_access_s = now
            width = len(session.handles.get(handle, ()))
            session.layer_hits.extend([0] * (width - len(session.layer_hits)))
            for i in range(width):
                session.layer_hits[i] += 1
            session.sample(now)

    def record_miss(self, reason: str) -> None:
        """A read of a handle the pool does not hold (``reason``: unknown, freed or evicted)."""
        with self._lock:
            self._totals["misses"] += 1
            self._totals[f"misses_{reason}"] += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view: ``{"version", "taken_at_s", "totals", "tier_bytes", "hit_rate", "sessions", "series"}``.

        ``sessions[id]`` = ``{"bytes", "entries", "hits", "last_access_s", "layers": [{"bytes", "hits"}],
        "series": [[t_s, bytes, hits], ...]}``; ``series`` = ``[[t_s, hits, misses, {tier: bytes}], ...]``.
        """
        with self._lock:
            hits, misses = self._totals["hits"], self._totals["misses"]
            sessions = {}
            for session_id, session in self._sessions.items():
                layer_bytes = session.layer_bytes()
                width = max(len(layer_bytes), len(session.layer_hits))
                layers = [{"bytes": layer_bytes[i] if i < len(layer_bytes) else 0,
                           "hits": session.layer_hits[i] if i < len(session.layer_hits) else 0} for i in range(width)]
                sessions[session_id] = {"bytes": session.nbytes(), "entries": len(session.handles),
                                        "hits": session.hits, "last_access_s": session.last_access_s,
                                        "layers": layers, "series": [list(sample) for sample in session.series]}
            return {"version": SNAPSHOT_VERSION, "taken_at_s": time.time(), "totals": dict(self._totals),
                    "tier_bytes": {tier: nbytes for tier, nbytes in self._tier_bytes.items()},
                    "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
                    "sessions": sessions, "series": [[t, h, m, dict(b)] for t, h, m, b in self._series]}

    def tier_bytes(self) -> dict[Tier, int]:
        """Bytes per tier as the events tell it (must match the pool's own accounting)."""
        with self._lock:
            return {Tier(tier): nbytes for tier, nbytes in self._tier_bytes.items()}

    def _session(self, session_id: SessionId) -> _SessionStats:
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _SessionStats(self._series_len)
        self._sessions.move_to_end(session_id)
        return session

    def _sample(self, now_s: float) -> None:
        self._series.append((now_s, self._totals["hits"], self._totals["misses"], dict(self._tier_bytes)))

    def _forget_idle_sessions(self) -> None:
        if len(self._sessions) <= self._max_idle_sessions:
            return
        idle = [sid for sid, session in self._sessions.items() if not session.handles]
        for session_id in idle[: max(0, len(idle) - self._max_idle_sessions)]:
            del self._sessions[session_id]
