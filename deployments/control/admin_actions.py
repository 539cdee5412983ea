"""Admin actions of the control shell (LMCache-controller style): every action is recorded as an
admin event (durable, in the control plane's store) and returns its ``event_id`` at once; the work
runs in the background and the event moves pending -> running -> done | failed with a detail.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from control_plane.admin_events import AdminEventStatus
from control_plane.control_plane import ControlPlane
from control_plane.errors import ControlPlaneError, SessionNotReady
from control_plane.ids import ReplicaId, SessionId
from control_plane.migration import MigrationMethod
from control_plane.states import SessionState
from deployments.common.detached import DetachedTasks

log = logging.getLogger(__name__)
_TIMEOUT_S = 300.0


class BadAdminRequest(ControlPlaneError, ValueError):
    """An admin call whose arguments do not name anything to act on (HTTP 400). The HTTP layer
    validates bodies first (deployments/ingress/admin/schema.py); this guards direct callers."""


class AdminActions:
    """``shell`` provides ``cp`` (ControlPlane), ``replicas`` (handles) and ``runner`` (MigrationRunner)."""

    def __init__(self, cp: ControlPlane, replicas: dict[str, Any], runner: Any):
        self.cp, self.replicas, self.runner = cp, replicas, runner
        self._tasks = DetachedTasks()  # not children of the admin request: a hang-up does not cancel them
        self.draining: set[str] = set()  # replicas an admin drained (they take no new sessions)

    def start(self, action: str, work: Callable[[], Awaitable[dict]], **detail: Any) -> str:
        """Record the event, run ``work`` in the background, return the event id."""
        event = self.cp.begin_admin_event(action, **detail)
        self._tasks.start(self._run(event.event_id, work), name=f"admin-{action}")
        return event.event_id

    async def _run(self, event_id: str, work: Callable[[], Awaitable[dict]]) -> None:
        self.cp.update_admin_event(event_id, AdminEventStatus.RUNNING)
        try:
            result = await asyncio.wait_for(work(), timeout=_TIMEOUT_S)
            self.cp.update_admin_event(event_id, AdminEventStatus.DONE, result=result)
        except BaseException as exc:  # recorded on the event (how the caller learns of it), even when cancelled
            log.warning("admin event %s failed: %r", event_id, exc)
            self.cp.update_admin_event(event_id, AdminEventStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise

    # ---- actions ---------------------------------------------------------------------------
    def dispatch(self, action: str, **kwargs: Any) -> dict:
        """One admin route's action: ``{"event_id"}`` to poll for the changing ones, the answer for
        ``lookup``; ValueError for an unknown action."""
        if action == "move":
            return {"event_id": self.move(kwargs["session_id"], kwargs.get("target_replica"),
                                          kwargs.get("method", "transfer"))}
        if action == "drain":
            return {"event_id": self.drain(kwargs["replica"])}
        if action in ("pin", "unpin"):
            return {"event_id": self.set_pinned(kwargs["session_id"], action == "pin")}
        if action == "compress":
            if kwargs.get("codec"):
                return {"event_id": self.pool_change("quantize", kwargs["session_id"], codec=kwargs["codec"])}
            return {"event_id": self.pool_change("recompress", kwargs["session_id"],
                                                 compression_ratio=kwargs["compression_ratio"])}
        if action == "decompress":
            return {"event_id": self.pool_change("dequantize", kwargs["session_id"])}
        if action == "clear":
            return {"event_id": self.clear(kwargs.get("session_id"), kwargs.get("replica"),
                                           bool(kwargs.get("all")))}
        if action == "lookup":
            return self.lookup(kwargs.get("session_id"), kwargs.get("token_ids"))
        raise ValueError(f"unknown admin action {action!r}")

    def move(self, session_id: str, target: str | None, method: str) -> str:
        plan = self.cp.plan_move(SessionId(session_id), ReplicaId(target) if target else None,
                                 MigrationMethod(method))
        return self.start("move", lambda: self.runner.run(plan), session_id=session_id, target=plan.target)

    def drain(self, replica_id: str, poll_s: float = 0.5) -> str:
        """Stop placing on the replica; the control loop's ticks move its sessions away (plans of
        reason ``drain``). The event is done once the replica holds no session."""
        plans = self.cp.drain(ReplicaId(replica_id))
        self.draining.add(replica_id)

        async def work() -> dict:
            while self.cp.view.session_count(ReplicaId(replica_id)):
                await asyncio.sleep(poll_s)
            return {"moved": len(plans), "remaining": 0}

        return self.start("drain", work, replica=replica_id, sessions=len(plans))

    def set_pinned(self, session_id: str, pinned: bool) -> str:
        record = self.cp.session(SessionId(session_id))

        async def work() -> dict:
            await self.replicas[record.replica].admin.remote("set_pinned", session_id, pinned=pinned)
            self.cp.set_pinned(SessionId(session_id), pinned)
            return {"pinned": pinned}

        return self.start("pin" if pinned else "unpin", work, session_id=session_id)

    def pool_change(self, action: str, session_id: str, **kwargs: Any) -> str:
        """compress (recompress / quantize) and decompress (dequantize) a stored entry in place."""
        record = self.cp.session(SessionId(session_id))
        if record.state is not SessionState.READY and record.state is not SessionState.SPILLED:
            raise SessionNotReady(f"session {session_id} is {record.state.value}; wait until it is ready")

        async def work() -> dict:
            return await self.replicas[record.replica].admin.remote(action, session_id, **kwargs)

        return self.start(action, work, session_id=session_id, **kwargs)

    def clear(self, session_id: str | None, replica_id: str | None, everything: bool) -> str:
        if session_id:
            targets = [self.cp.session(SessionId(session_id))]
        else:
            targets = [r for r in self.cp.view.sessions() if r.state is not SessionState.DELETED
                       and (everything or r.replica == replica_id)]

        async def work() -> dict:
            freed = 0
            for record in targets:
                _, entries = self.cp.delete_session(record.id, reason="cleared")
                for entry in entries:
                    if entry.replica_id in self.replicas:
                        freed += await self.replicas[entry.replica_id].free.remote(record.id)
            return {"sessions": len(targets), "freed_bytes": freed}

        return self.start("clear", work, session_id=session_id, replica=replica_id, all=everything)

    def lookup(self, session_id: str | None, token_ids: list[int] | None) -> dict:
        if session_id:
            record = self.cp.session(SessionId(session_id))
            return {"session_id": session_id, "replica": record.replica, "state": record.state.value,
                    "copies": [{"replica": e.replica_id, "tier": e.tier.value, "bytes": e.stored_bytes}
                               for e in self.cp.view.copies_of(SessionId(session_id))]}
        if token_ids is not None:
            hits = [{"session_id": r.id, "replica": r.replica}
                    for r in self.cp.view.sessions()
                    if r.context.token_ids is not None and tuple(token_ids[:len(r.context.token_ids)])
                    == r.context.token_ids]
            return {"prefix_holders": hits}
        raise BadAdminRequest("lookup needs session_id or token_ids")
