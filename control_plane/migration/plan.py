"""MigrationPlan: one decision to move (or rebuild) one session. Plain data; the shell acts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from control_plane.ids import ReplicaId, SessionId
from control_plane.replica import Tier


class MigrationMethod(str, Enum):
    TRANSFER = "transfer"  # export the compressed cache from ``source``, import it on ``target``
    REBUILD = "rebuild"    # re-prefill the durably stored context on ``target``


class MigrationReason(str, Enum):
    PRESSURE = "pressure"          # source is over its pressure threshold
    DRAIN = "drain"                # source is being drained
    REPLICA_DEAD = "replica_dead"  # source stopped heartbeating or was declared dead
    COPY_LOST = "copy_lost"        # the pool evicted the only copy, or a restart interrupted a load
    ADMIN = "admin"                # an admin asked for the move


@dataclass(frozen=True)
class MigrationPlan:
    """Move ``session_id`` to ``target``.

    - TRANSFER: read the copy on ``source`` (in ``source_tier``), send it, import it on target.
    - REBUILD: re-prefill on ``target``; ``source`` is the old owner, if any, for the record.
    - ``free_source``: after the flip, the source's copy must be freed (it is alive and holds one).
    - ``stored_bytes``: size of the cache being moved (the estimate for a rebuild).
    - ``read_persisted``: REBUILD by reading a durable copy back (kvpool.durable_store) before
      re-prefilling; the re-prefill stays the fallback (control_plane.recovery_queue).
    - ``read_from``: the replica whose durable copy the target reads, when it is not the target's
      own (another replica on the same node: the copy's files are on the target's disk).
    - ``background``: no request waits for this session (a background recovery): a re-prefill
      gives way to the target's live prefills (deployments/engine/preemption.py).
    """

    session_id: SessionId
    source: ReplicaId | None
    target: ReplicaId
    reason: MigrationReason
    method: MigrationMethod
    stored_bytes: int
    source_tier: Tier | None = None
    free_source: bool = False
    detail: str = ""
    read_persisted: bool = False
    read_from: ReplicaId | None = None
    background: bool = False
