"""Session lifecycle: the states and the only transitions allowed between them.

::

    LOADING ──> READY <──> SPILLED          READY/SPILLED ──> MIGRATING ──> READY/SPILLED (flip or abort)
       │                                 READY/SPILLED/MIGRATING/LOADING ──> REBUILDING ──> READY
       └──────> FAILED <──── REBUILDING  FAILED ──> REBUILDING (admin retry)
                                         every state but DELETED ──> DELETED (terminal)

- LOADING: a replica is prefilling the context for the first time.
- READY: the owner replica holds the compressed cache in device memory and can answer.
- SPILLED: the owner holds it in host memory or on disk; it can still answer (the pool promotes).
- MIGRATING: a copy is being moved to another replica; the source still answers until the flip.
- REBUILDING: no usable copy is known; a replica is re-prefilling the durably stored context.
- FAILED: loading or rebuilding failed for good; only a rebuild (admin) or delete leaves it.
- DELETED: freed by the client, an admin or TTL expiry; terminal.
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Mapping

from control_plane.errors import InvalidTransition


class SessionState(str, Enum):
    LOADING = "loading"
    READY = "ready"
    SPILLED = "spilled"
    MIGRATING = "migrating"
    REBUILDING = "rebuilding"
    FAILED = "failed"
    DELETED = "deleted"


_S = SessionState

ALLOWED_TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = MappingProxyType({
    _S.LOADING: frozenset({_S.READY, _S.REBUILDING, _S.FAILED, _S.DELETED}),
    _S.READY: frozenset({_S.SPILLED, _S.MIGRATING, _S.REBUILDING, _S.DELETED}),
    _S.SPILLED: frozenset({_S.READY, _S.MIGRATING, _S.REBUILDING, _S.DELETED}),
    _S.MIGRATING: frozenset({_S.READY, _S.SPILLED, _S.REBUILDING, _S.DELETED}),
    _S.REBUILDING: frozenset({_S.READY, _S.FAILED, _S.DELETED}),
    _S.FAILED: frozenset({_S.REBUILDING, _S.DELETED}),
    _S.DELETED: frozenset(),
})
"""state -> states it may move to. Staying in the same state is not a transition."""

SERVABLE_STATES = frozenset({_S.READY, _S.SPILLED, _S.MIGRATING})
"""States in which the owner replica holds a complete copy and may answer questions."""

MOVABLE_STATES = frozenset({_S.READY, _S.SPILLED})
"""States from which a TRANSFER migration may start."""

LIVE_STATES = frozenset(s for s in SessionState if s is not _S.DELETED)


def can_transition(current: SessionState, new: SessionState) -> bool:
    """True when ``current -> new`` is in ALLOWED_TRANSITIONS."""
    return new in ALLOWED_TRANSITIONS[current]


def check_transition(session_id: str, current: SessionState, new: SessionState) -> None:
    """Raise InvalidTransition unless ``current -> new`` is allowed."""
    if can_transition(current, new):
        return
    allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[current]) or ["nothing (terminal)"]
    raise InvalidTransition(
        f"session {session_id} cannot go from {current.value} to {new.value}; "
        f"from {current.value} it may go to: {', '.join(allowed)}"
    )
