"""control_plane: pure decisions about sessions and replicas (registry, placement, migration,
durable store). May import kvpool and transfer; never ray or ray.serve, and is testable without Ray.

Layout: ``model`` pieces (ids, states, session, context, replica), ``cluster_view`` (what is where,
fed by heartbeats and pool events), ``placement/`` and ``migration/`` (policies: decisions as
data), ``store/`` (durable records and admin events), ``control_plane.ControlPlane`` (the object
the Serve shell holds), ``config.ControlPlaneConfig``.
"""

from control_plane.admin_events import AdminEvent, AdminEventStatus
from control_plane.cluster_view import ClusterView, PoolEntry
from control_plane.config import ControlPlaneConfig
from control_plane.context import SessionContext
from control_plane.control_plane import ControlPlane, TickReport
from control_plane.errors import (
    ControlPlaneError, InsufficientCapacity, InvalidMigration, InvalidTransition, NoReplicaAvailable,
    PoolEventError, SessionNotReady, StaleRecord, StoreError, UnknownAdminEvent, UnknownMigrationJob,
    UnknownPolicy, UnknownReplica, UnknownSession,
)
from control_plane.ids import ANONYMOUS_OWNER, AdminEventId, JobId, NodeId, ReplicaId, SessionId, new_session_id
from control_plane.migration import (
    MigrationJob, MigrationMethod, MigrationPlan, MigrationReason, MigrationStep, StepResult,
)
from control_plane.placement import PlacementDecision, PlacementPolicy, PlacementRequest, make_placement_policy
from control_plane.pool_events import PoolEventKind
from control_plane.replica import ReplicaStats, ReplicaView, TierBytes
from control_plane.session import SessionRecord
from control_plane.states import ALLOWED_TRANSITIONS, SessionState
from control_plane.store import MemorySessionStore, SessionStore, SQLiteSessionStore, open_store
from control_plane.ttl import expired_sessions
from kvpool.handles import Tier

__all__ = [
    "ALLOWED_TRANSITIONS", "ANONYMOUS_OWNER", "AdminEvent", "AdminEventId", "AdminEventStatus", "ClusterView",
    "ControlPlane", "ControlPlaneConfig", "ControlPlaneError", "InsufficientCapacity", "InvalidMigration",
    "InvalidTransition", "JobId", "MemorySessionStore", "MigrationJob", "MigrationMethod", "MigrationPlan",
    "MigrationReason", "MigrationStep", "NoReplicaAvailable", "NodeId", "PlacementDecision", "PlacementPolicy",
    "PlacementRequest", "PoolEntry", "PoolEventError", "PoolEventKind", "ReplicaId", "ReplicaStats", "ReplicaView",
    "SQLiteSessionStore", "SessionContext", "SessionId", "SessionNotReady", "SessionRecord", "SessionState",
    "SessionStore", "StaleRecord", "StepResult", "StoreError", "Tier", "TierBytes", "TickReport",
    "UnknownAdminEvent", "UnknownMigrationJob", "UnknownPolicy", "UnknownReplica", "UnknownSession",
    "expired_sessions", "make_placement_policy", "new_session_id", "open_store",
]
