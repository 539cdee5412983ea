"""Builders for control-plane tests: replicas, sessions and pool events (as a KV pool emits them)."""

from __future__ import annotations

from dataclasses import dataclass

from control_plane import (
    ClusterView, ControlPlaneConfig, NodeId, ReplicaId, ReplicaStats, SessionContext, SessionId, SessionRecord,
    SessionState, Tier,
)
from kvpool.press_spec import PressSpec

MiB = 1 << 20


@dataclass(frozen=True)
class PoolEvent:
    """Shape of a kvpool pool event: kind, handle, session id, tier, bytes."""

    kind: str
    handle: str
    session_id: str | None
    tier: str
    nbytes: int


def config(**overrides) -> ControlPlaneConfig:
    return ControlPlaneConfig(**{"store": "memory", "placement_seed": 7, **overrides})


def stats(node: str = "node-a", device_mib: int = 100, held_mib: int | None = None, queue: int = 0,
          draining: bool = False, host_mib: int = 0, disk_mib: int = 0) -> ReplicaStats:
    held = None if held_mib is None else {Tier.DEVICE: held_mib * MiB}
    return ReplicaStats(node=NodeId(node), capacity_bytes={Tier.DEVICE: device_mib * MiB, Tier.HOST: host_mib * MiB,
                                                           Tier.DISK: disk_mib * MiB},
                        held_bytes=held, queue_depth=queue, draining=draining)


def view_with(*replicas: tuple[str, dict], now_s: float = 0.0, heartbeat_timeout_s: float = 10.0) -> ClusterView:
    """A ClusterView with ``(replica_id, stats kwargs)`` replicas registered at ``now_s``."""
    view = ClusterView(heartbeat_timeout_s=heartbeat_timeout_s)
    for replica_id, kwargs in replicas:
        view.heartbeat(ReplicaId(replica_id), stats(**kwargs), now_s)
    return view


def record(session_id: str = "s1", *, state: SessionState = SessionState.READY, replica: str | None = "r1",
           tier: Tier | None = Tier.DEVICE, stored_mib: float = 1, last_used_s: float = 0.0, owner: str = "anonymous",
           text: str | None = None, ttl_s: float | None = None, pinned: bool = False, model: str = "m") -> SessionRecord:
    """A record built directly in ``state`` (bypassing transitions, as a store would load it)."""
    base = SessionRecord.new(SessionId(session_id), model=model, context=SessionContext(text=text or f"ctx {session_id}"),
                             press=PressSpec(name="knorm", compression_ratio=0.5), now_s=0.0, owner=owner, ttl_s=ttl_s,
                             pinned=pinned)
    return base.model_copy(update={"state": state, "replica": ReplicaId(replica) if replica else None, "tier": tier,
                                   "stored_bytes": int(stored_mib * MiB), "last_used_s": last_used_s})


def put_with_copy(view: ClusterView, rec: SessionRecord, handle: str | None = None) -> SessionRecord:
    """Put ``rec`` into the view and report its copy from its replica's pool (stored event)."""
    view.put_session(rec)
    if rec.replica is not None and rec.tier is not None:
        view.apply_pool_event(rec.replica, PoolEvent("stored", handle or f"h-{rec.id}", rec.id, rec.tier.value,
                                                     rec.stored_bytes))
    return view.session(rec.id)
