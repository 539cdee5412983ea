"""Admin move: an operator asks for one session to go to a given (or any better) replica."""

from __future__ import annotations

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig
from control_plane.errors import InsufficientCapacity, InvalidMigration
from control_plane.ids import ReplicaId, SessionId
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.replica import ReplicaView
from control_plane.states import MOVABLE_STATES


def plan_admin_move(view: ClusterView, session_id: SessionId, config: ControlPlaneConfig,
                    target: ReplicaId | None = None,
                    method: MigrationMethod = MigrationMethod.TRANSFER) -> MigrationPlan:
    """One plan moving ``session_id`` to ``target`` (or to the least loaded replica with room).

    ``method=REBUILD`` re-prefills on the target instead of copying (e.g. to rebuild with a fresh
    engine). Raises UnknownSession, UnknownReplica, InvalidMigration (session not READY/SPILLED,
    its replica dead, target is the source or not accepting, no other replica accepts sessions) or
    InsufficientCapacity (no target given and none has room).
    """
    record = view.session(session_id)
    if record.state not in MOVABLE_STATES or record.replica is None:
        raise InvalidMigration(f"session {session_id} is {record.state.value}; only ready or spilled sessions "
                               "can be moved - retry once it is ready")
    source = view.replica(record.replica)
    if not source.alive:
        raise InvalidMigration(f"session {session_id}'s replica {source.replica_id} is dead; its recovery is "
                               "already planned - poll the session instead")
    if target is None:
        chosen = _pick_any(view, config, record.stored_bytes, source.replica_id)
    else:
        chosen = view.replica(target)
        if chosen.replica_id == source.replica_id:
            raise InvalidMigration(f"session {session_id} is already on {target}; name another replica")
        if not chosen.accepts_sessions:
            raise InvalidMigration(f"replica {target} is {'dead' if not chosen.alive else 'draining'}; "
                                   "name an alive, non-draining replica")
    return MigrationPlan(
        session_id=record.id, source=source.replica_id, target=chosen.replica_id, reason=MigrationReason.ADMIN,
        method=method, stored_bytes=record.stored_bytes, source_tier=record.tier, free_source=True,
        detail="requested by an admin",
    )


def _pick_any(view: ClusterView, config: ControlPlaneConfig, stored_bytes: int, source: ReplicaId) -> ReplicaView:
    if not [r for r in view.accepting_replicas() if r.replica_id != source]:
        # the fleet cannot satisfy this move (a conflict with its state, like naming a draining
        # target), not a server failure: NoReplicaAvailable (503) is for placing new sessions
        raise InvalidMigration(f"no other alive, non-draining replica than {source} to move to; start one and retry")
    picked = TargetPicker(view, max_pressure=config.pressure_threshold, allow_spill=True).pick(
        stored_bytes, exclude={source})
    if picked is None:
        raise InsufficientCapacity(f"no replica has room for {stored_bytes} bytes; free sessions or add replicas")
    return picked
