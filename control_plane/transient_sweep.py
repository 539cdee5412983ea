"""The bounded sweep: no session stays in a transient state (LOADING, MIGRATING, REBUILDING) forever.

Pure decisions, no Ray. Normally the ingress ends a load (``mark_loaded`` / ``mark_load_failed``)
and migration jobs end MIGRATING / REBUILDING; this sweep repairs what slipped through (a client
that hung up at the wrong moment, an ingress or replica that died mid-load, a lost step result).

A record *overstays* when its (state, version) has not changed for ``max_age_s`` seconds of the
control plane's clock while in a transient state and no migration job drives it. Repairs:

- LOADING -> FAILED with a reason (the client polling ``GET /v1/sessions/{id}`` sees it; a retry
  or DELETE is theirs to decide - the load's outcome is unknown, so it is not silently retried);
- MIGRATING / REBUILDING without a job -> what a control-plane restart does with them
  (control_plane.recovery): back to the source copy, or REBUILDING without target, which the
  orphan planner picks up again; a REBUILDING without target that still overstays (nothing
  could place it) -> FAILED with a reason.

The clock starts when the sweep first sees the record in that state and version, so a restarted
control plane waits a full ``max_age_s`` again (it never repairs on a stale timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from control_plane.ids import SessionId
from control_plane.recovery import recover_record
from control_plane.session import SessionRecord
from control_plane.states import SessionState

TRANSIENT_STATES = frozenset({SessionState.LOADING, SessionState.MIGRATING, SessionState.REBUILDING})


@dataclass(frozen=True)
class Repair:
    """One repaired record: ``before`` overstayed, ``after`` is what to store."""

    before: SessionRecord
    after: SessionRecord


def repair_record(record: SessionRecord, max_age_s: float) -> SessionRecord:
    """The record to store for an overstaying transient ``record`` (see the module docstring)."""
    if record.state is SessionState.LOADING:
        return record.transition(SessionState.FAILED, failure=(
            f"the load did not finish within {max_age_s:g} s (its client or replica went away); "
            "delete the session and load it again"))
    fixed = recover_record(record)
    if fixed is not None:
        return fixed
    return record.transition(SessionState.FAILED, failure=(  # REBUILDING that nothing could place
        f"could not be rebuilt within {max_age_s:g} s; an admin rebuild or a new load is needed"))


class TransientSweep:
    """Remembers when each transient record was first seen unchanged; ``overdue`` lists repairs."""

    def __init__(self, max_age_s: float):
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.max_age_s = max_age_s
        self._since: dict[SessionId, tuple[SessionState, int, float]] = {}

    def overdue(self, records: Iterable[SessionRecord], now_s: float, busy: set[SessionId]) -> list[Repair]:
        """Repairs for the records that overstayed at ``now_s``; ``busy``: sessions a running
        migration job drives (left alone, their clock restarted)."""
        repairs: list[Repair] = []
        seen: dict[SessionId, tuple[SessionState, int, float]] = {}
        for record in records:
            if record.state not in TRANSIENT_STATES:
                continue
            key = (record.state, record.version)
            prior = self._since.get(record.id)
            since = prior[2] if prior is not None and prior[:2] == key and record.id not in busy else now_s
            seen[record.id] = (*key, since)
            if now_s - since >= self.max_age_s:
                repairs.append(Repair(record, repair_record(record, self.max_age_s)))
        self._since = seen
        return repairs
