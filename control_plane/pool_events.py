"""KV pool events as the control plane reads them, and how each one changes a session record.

A replica's KVPool emits ``stored / spilled / promoted / recompressed / evicted / freed`` events,
each naming a handle, the session (if any), a tier and a byte count. The Serve shell forwards them
with the replica id: ``ClusterView.apply_pool_event(replica_id, event)``. The event may be the
pool's own event object or a dict with the same fields (as it arrives over Ray).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from control_plane.errors import PoolEventError
from control_plane.ids import SessionId
from control_plane.replica import parse_tier, resting_state
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from kvpool.handles import Tier


class PoolEventKind(str, Enum):
    """The kinds kvpool.events.EventKind emits (same values)."""

    STORED = "stored"
    SPILLED = "spilled"
    PROMOTED = "promoted"
    RECOMPRESSED = "recompressed"
    QUANTIZED = "quantized"
    DEQUANTIZED = "dequantized"
    PINNED = "pinned"
    UNPINNED = "unpinned"
    EVICTED = "evicted"
    FREED = "freed"


REMOVING_KINDS = frozenset({PoolEventKind.EVICTED, PoolEventKind.FREED})
"""After these the replica no longer holds the entry; after every other kind it holds it, in
``tier``, ``stored_bytes`` big."""

BYTES_FIELDS = ("nbytes", "stored_bytes", "bytes")
"""Field names read, first present wins, for the entry's size in bytes."""


@dataclass(frozen=True)
class PoolEventFacts:
    """The fields of one pool event the control plane uses."""

    kind: PoolEventKind
    handle: str
    session_id: SessionId | None
    tier: Tier
    stored_bytes: int

    @classmethod
    def from_event(cls, event: Any) -> "PoolEventFacts":
        """Read ``kind, handle, session_id, tier`` and a bytes field from an object or a mapping.

        Raises PoolEventError naming the missing or bad field.
        """
        get = event.get if isinstance(event, Mapping) else (lambda name, default=None: getattr(event, name, default))
        kind_raw = get("kind")
        try:
            kind = PoolEventKind(str(getattr(kind_raw, "value", kind_raw)).lower())
        except ValueError:
            valid = ", ".join(k.value for k in PoolEventKind)
            raise PoolEventError(f"pool event kind {kind_raw!r} is not one of: {valid}") from None
        handle = get("handle")
        if handle is None:
            raise PoolEventError(f"pool event {kind.value} has no handle; every pool event must name its entry")
        size = next((get(name) for name in BYTES_FIELDS if get(name) is not None), None)
        if size is None or int(size) < 0:
            raise PoolEventError(f"pool event {kind.value} needs a byte count >= 0 in one of {BYTES_FIELDS}")
        if get("tier") is None:
            raise PoolEventError(f"pool event {kind.value} has no tier")
        session = get("session_id")
        return cls(kind=kind, handle=str(handle), session_id=SessionId(str(session)) if session else None,
                   tier=parse_tier(get("tier")), stored_bytes=int(size))

    @property
    def holds_copy(self) -> bool:
        return self.kind not in REMOVING_KINDS


def owner_copy_changed(record: SessionRecord, facts: PoolEventFacts, primary_tier: Tier) -> SessionRecord | None:
    """How the owner replica's copy changing (moved tier, resized) changes the record; None if not.

    READY <-> SPILLED follows the tier (the replica's ``primary_tier`` vs a slower one); other
    states only track tier and bytes.
    """
    state = record.state
    if state in (SessionState.READY, SessionState.SPILLED):
        state = resting_state(facts.tier, primary_tier)
    if state is record.state and record.tier is facts.tier and record.stored_bytes == facts.stored_bytes:
        return None
    if state is record.state:
        return record.updated(tier=facts.tier, stored_bytes=facts.stored_bytes)
    return record.transition(state, tier=facts.tier, stored_bytes=facts.stored_bytes)


def owner_copy_lost(record: SessionRecord) -> SessionRecord | None:
    """The owner replica dropped its last copy (evicted, or freed behind the control plane's back).

    READY/SPILLED -> REBUILDING with no replica, so locate() stops routing to it and the recovery
    planner re-prefills it. A MIGRATING session keeps its state (its job decides) but loses its tier,
    so it is not served from the source any more. Other states: None.
    """
    if record.state in (SessionState.READY, SessionState.SPILLED):
        return record.transition(SessionState.REBUILDING, replica=None, node=None, tier=None, target_replica=None)
    if record.state is SessionState.MIGRATING and record.tier is not None:
        return record.updated(tier=None)
    return None
