"""TargetPicker: where migrated or rebuilt sessions go, with bytes reserved across one round.

A planning round may send many sessions at once; the picker adds each chosen session's bytes to
its target's projected load, so a round never piles more onto a replica than it has room for.
Sessions already heading somewhere (``record.target_replica``) count as reserved from the start.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from control_plane.cluster_view import ClusterView
from control_plane.ids import NodeId, ReplicaId
from control_plane.replica import ReplicaView


class TargetPicker:
    """Picks the least loaded accepting replica that stays under a pressure cap.

    ``max_pressure``: projected device pressure a target may reach. With ``allow_spill``, when no
    replica stays under it, the least loaded replica whose free bytes over all tiers still fit is
    chosen (its pool spills to host or disk) - drains and deaths must re-home every session.
    """

    def __init__(self, view: ClusterView, *, max_pressure: float, allow_spill: bool = False) -> None:
        self.view = view
        self.max_pressure = max_pressure
        self.allow_spill = allow_spill
        self.reserved_bytes: Counter[ReplicaId] = Counter()
        self._accepting = view.accepting_replicas()  # fixed for one planning round
        for replica in self._accepting:
            inbound = view.sessions_heading_to(replica.replica_id)
            self.reserved_bytes[replica.replica_id] = sum(r.stored_bytes for r in inbound)

    def pick(self, stored_bytes: int, *, exclude: Iterable[ReplicaId] = (),
             prefer_node: NodeId | None = None) -> ReplicaView | None:
        """Best target for ``stored_bytes`` and reserve them there; None when nothing fits.

        ``prefer_node``: if a fitting replica is on that node, only those are considered (a disk
        copy is read locally).
        """
        excluded = set(exclude)
        candidates = [r for r in self._accepting if r.replica_id not in excluded]
        fitting = [r for r in candidates if self._projected(r, stored_bytes) <= self.max_pressure]
        if not fitting and self.allow_spill:
            fitting = [r for r in candidates
                       if r.free_bytes_total() - self.reserved_bytes[r.replica_id] >= stored_bytes]
        if not fitting:
            return None
        local = [r for r in fitting if prefer_node is not None and r.node == prefer_node]
        best = min(local or fitting, key=lambda r: (self._projected(r, stored_bytes), r.queue_depth, r.replica_id))
        self.reserved_bytes[best.replica_id] += stored_bytes
        return best

    def _projected(self, replica: ReplicaView, stored_bytes: int) -> float:
        return replica.pressure(self.reserved_bytes[replica.replica_id] + stored_bytes)
