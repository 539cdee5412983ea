"""Loads the control plane placed on a replica that the replica's last heartbeat cannot count yet.

A replica reports its queue depth (loads + streams in flight) in its heartbeat, every few
seconds. Placement decisions in between would all see the same depths, so loads that arrive
together herd onto the replica that looked least loaded (measured: two loads sent at once to an
idle two-replica app both went to one replica and took 2x one load, benchmarks/threads_cpu.py).
``PendingLoads`` counts, per replica, the sessions placed there in a loading state (a new load or
a rebuild) since its last heartbeat; ``ClusterView`` adds that count to the queue depth policies
read, and a heartbeat clears it (the replica now counts those loads itself). Sequence numbers,
not clocks, order placements and heartbeats.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from control_plane.ids import ReplicaId, SessionId
from control_plane.session import SessionRecord
from control_plane.states import SessionState

LOADING = (SessionState.LOADING, SessionState.REBUILDING)


class PendingLoads:
    def __init__(self) -> None:
        self._seq = itertools.count()
        self._beat: dict[ReplicaId, int] = {}
        self._placed: dict[ReplicaId, dict[SessionId, int]] = defaultdict(dict)

    def update(self, old: SessionRecord | None, new: SessionRecord) -> None:
        """A session's record ``old`` (None: new session) replaced by ``new``: a loading record on a
        replica is placed there (a re-put keeps its first placement's order); any other settles."""
        loading = new.state in LOADING and new.replica is not None
        if old is not None and old.replica is not None and (not loading or old.replica != new.replica):
            self.settled(old.replica, old.id)
        if loading:
            self.placed(new.replica, new.id)

    def placed(self, replica_id: ReplicaId, session_id: SessionId) -> None:
        """``session_id`` started loading on ``replica_id`` (idempotent: its first placement counts)."""
        self._placed[replica_id].setdefault(session_id, next(self._seq))

    def settled(self, replica_id: ReplicaId, session_id: SessionId) -> None:
        """``session_id`` left its loading state on ``replica_id`` (ready, failed, moved, deleted)."""
        self._placed.get(replica_id, {}).pop(session_id, None)

    def beat(self, replica_id: ReplicaId) -> None:
        """A heartbeat from ``replica_id``: loads placed before it are in its own queue depth."""
        self._beat[replica_id] = next(self._seq)

    def count(self, replica_id: ReplicaId) -> int:
        """Loads placed on ``replica_id`` after its last heartbeat and still loading."""
        since = self._beat.get(replica_id, -1)
        return sum(seq > since for seq in self._placed.get(replica_id, {}).values())
