"""Restart recovery: what the stored records mean when a control plane starts again.

Migration jobs live in memory, so after a restart no job is driving a MIGRATING or REBUILDING
session, and a LOADING session's client has already seen its request fail. ``recover_records``
turns each such record into one the planners pick up again; nothing is dropped.
"""

from __future__ import annotations

from typing import Iterable

from control_plane.replica import resting_state
from control_plane.session import SessionRecord
from control_plane.states import SessionState

_RESTART = "control plane restarted"


def recover_record(record: SessionRecord) -> SessionRecord | None:
    """The record to store after a restart, or None when it is fine as is.

    - LOADING -> REBUILDING without target (re-prefilled from its stored context).
    - MIGRATING with a source copy -> READY (device or host tier; disk: SPILLED) on the source; the
      next pool event of that copy corrects READY/SPILLED, and the planners decide again whether to
      move it. Without a source copy -> REBUILDING without target.
    - REBUILDING with a target -> target cleared (its rebuild is planned again).
    """
    if record.state is SessionState.LOADING:
        return record.transition(SessionState.REBUILDING, replica=None, node=None, tier=None, target_replica=None,
                                 failure=f"{_RESTART} during the load")
    if record.state is SessionState.MIGRATING:
        if record.tier is None or record.replica is None:
            return record.transition(SessionState.REBUILDING, replica=None, node=None, tier=None,
                                     target_replica=None, failure=f"{_RESTART} while migrating from a lost copy")
        return record.transition(resting_state(record.tier, None), target_replica=None)
    if record.state is SessionState.REBUILDING and record.target_replica is not None:
        return record.updated(target_replica=None)
    return None


def recover_records(records: Iterable[SessionRecord]) -> tuple[list[SessionRecord], list[SessionRecord]]:
    """Split stored records into (live records as they should be now, the ones that changed).

    DELETED tombstones are left out of the live list.
    """
    live: list[SessionRecord] = []
    changed: list[SessionRecord] = []
    for record in records:
        if record.state is SessionState.DELETED:
            continue
        fixed = recover_record(record)
        if fixed is not None:
            changed.append(fixed)
        live.append(fixed or record)
    return live, changed
