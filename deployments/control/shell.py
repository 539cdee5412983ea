"""ControlShell: the thin Serve deployment around control_plane.ControlPlane (one replica).

It feeds the pure control plane with facts (replica heartbeats, KV pool events, lost caches) and
carries its decisions out through the replica handles (free, migrate, rebuild). Decisions live in
control_plane; this file only moves data and awaits remote calls, each with a timeout. Tier
names as the control plane sees them: deployments/control/tiers.py; admin actions:
admin_actions.py; stored responses' records: response_records.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.serve._private.constants import SERVE_NAMESPACE


from control_plane.context import SessionContext
from control_plane.control_plane import ControlPlane
from control_plane.ids import ReplicaId, SessionId
from control_plane.replica import ReplicaStats, Tier
from control_plane.errors import SessionNotReady, UnknownSession
from control_plane.session_listing import page_sessions
from control_plane.states import SessionState
from deployments.common.replica_errors import ActorsRestarting
from deployments.control.admin_actions import AdminActions
from deployments.config import AppConfig
from deployments.control.migration_runner import MigrationRunner
from deployments.control.recovery_runner import RecoveryRunner
from deployments.control.response_records import ResponseRecords
from deployments.control.tiers import loaded_fields, primary_tier_map
from control_plane.recovery_queue import retry_after_s
from kvpool.press_spec import PressSpec

log = logging.getLogger(__name__)
_CALL_TIMEOUT_S = 60.0


class ControlShell(ResponseRecords):
    """The Responses API's records come from ResponseRecords (deployments/control/response_records.py)."""

    def __init__(self, config: dict, replicas: dict[str, Any]):
        self.config = AppConfig.model_validate(config)
        self.cp = ControlPlane(self.config.control)
        self.replicas = replicas
        self._missing: dict[ReplicaId, set[str]] = {}
        self.lost_sessions = 0
        self.runner = MigrationRunner(self.cp, self.replicas, self.config)
        self.admin = AdminActions(self.cp, self.replicas, self.runner)
        self.recovery = RecoveryRunner(self.cp, self.runner)
        self._started = asyncio.Event()
        self._loop_task = asyncio.get_event_loop().create_task(self._loop())

    # ---- periodic loop ---------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                await self.heartbeat_all()
                self._started.set()
                await self.run_tick()
            except Exception:  # the loop must survive any single failure; it is logged and retried
                log.exception("control loop iteration failed")
            await asyncio.sleep(self.config.control_tick_s)

    async def ready(self) -> bool:
        await asyncio.wait_for(self._started.wait(), timeout=300)
        return True

    async def heartbeat_all(self) -> None:
        results = await asyncio.gather(*(self._heartbeat(r) for r in self.replicas), return_exceptions=True)
        for replica_id, result in zip(self.replicas, results):
            if isinstance(result, BaseException):
                log.warning("heartbeat of %s failed: %s", replica_id, result)

    async def _heartbeat(self, replica_id: str) -> None:
        versions = {r.id: r.version for r in self.cp.view.sessions_on(ReplicaId(replica_id))}
        beat = await asyncio.wait_for(self.replicas[replica_id].heartbeat.remote(), timeout=_CALL_TIMEOUT_S)
        if beat.get("restarting"):  # an actor restarts; the next full beat tells what its pool holds
            self.cp.view.restarting(ReplicaId(replica_id), self.cp.clock())
            return
        tiers = primary_tier_map(list(beat["tiers"]))
        stats = ReplicaStats(
            node=beat["node"], queue_depth=beat["queue_depth"],
            capacity_bytes={tiers[name]: t["budget_bytes"] for name, t in beat["tiers"].items()},
            held_bytes={tiers[name]: t["held_bytes"] for name, t in beat["tiers"].items()},
            draining=replica_id in self.admin.draining)
        self.cp.heartbeat(ReplicaId(replica_id), stats)
        for event in beat["events"]:
            if event["kind"] in ("stored", "spilled", "promoted", "recompressed", "evicted", "freed"):
                self.cp.apply_pool_event(ReplicaId(replica_id), {**event, "tier": tiers[event["tier"]].value})
        self._announce(ReplicaId(replica_id), beat["holds"], tiers)
        self._reconcile(ReplicaId(replica_id), set(beat["holds"]), versions)
        persisted = beat.get("persisted", {})
        stale = await self._drop_stale_copies(ReplicaId(replica_id), persisted)
        self.cp.recovery.note_persisted(ReplicaId(replica_id), {s: c for s, c in persisted.items() if s not in stale})
        self.recovery.note_heartbeat(ReplicaId(replica_id), beat)

    async def _drop_stale_copies(self, replica_id: ReplicaId, persisted: dict[str, dict]) -> list[str]:
        """Durable copies of sessions that are gone (deleted while this replica was down) or now
        answered by another replica - whose pool has reported holding it - are deleted (returned);
        they would only hold budget and stale data. A session merely *recorded* on another replica
        keeps this copy: right after a restart no pool holds it yet, and this copy may be its only one."""
        stale: list[str] = []
        for session_id in persisted:
            record = self.cp.view.find_session(SessionId(session_id))
            if record is None or (record.servable and record.replica != replica_id and any(
                    copy.replica_id == record.replica for copy in self.cp.view.copies_of(record.id))):
                stale.append(session_id)
        if stale:
            log.info("%s: deleting %d stale durable copies", replica_id, len(stale))
            await asyncio.wait_for(self.replicas[replica_id].drop_persisted.remote(stale), timeout=_CALL_TIMEOUT_S)
        return stale

    def _announce(self, replica_id: ReplicaId, holds: dict[str, dict], tiers: dict[str, Tier]) -> None:
        """Replicas re-announce what they hold: entries the view does not know yet (after a control
        plane restart the view starts empty) are applied as ``stored`` events."""
        known = {entry.handle for entry in self.cp.view.entries_on(replica_id)}
        for session_id, held in holds.items():
            if held["handle"] not in known:
                self.cp.apply_pool_event(replica_id, {"kind": "stored", "handle": held["handle"],
                                                      "session_id": session_id, "tier": tiers[held["tier"]].value,
                                                      "nbytes": held["nbytes"]})

    def _reconcile(self, replica_id: ReplicaId, holds: set[str], versions: dict[SessionId, int]) -> None:
        """Sessions the records place on this replica but its pool does not hold are lost (e.g. its
        decode actor restarted, or the control plane restarted meanwhile) and must be recovered.

        A snapshot may have been taken just before a load finished storing a session, so a missing
        session whose record changed since the heartbeat was asked for (``versions``) must be
        missing from the next heartbeat too; one unchanged since (e.g. every session after a
        restart) is lost at once."""
        missing = {r.id for r in self.cp.view.sessions_on(replica_id)
                   if r.id not in holds and r.state in (SessionState.READY, SessionState.SPILLED)}
        unchanged = {s for s in missing if versions.get(s) == self.cp.view.session(s).version}
        confirmed = missing & (self._missing.get(replica_id, set()) | unchanged)
        self._missing[replica_id] = missing - confirmed
        for session_id in confirmed:
            log.warning("session=%s is not held by %s any more; it will be rebuilt", session_id, replica_id)
            self.lost_sessions += 1
            handles = [e.handle for e in self.cp.view.copies_of(session_id) if e.replica_id == replica_id]
            for handle in handles or [f"lost-{session_id}"]:
                self.cp.apply_pool_event(replica_id, {"kind": "evicted", "handle": handle,
                                                      "session_id": session_id, "tier": "device", "nbytes": 0})

    async def run_tick(self) -> None:
        self.cp.recovery.add_orphans(self.cp.view, self.cp.jobs.has)  # lost sessions: the recovery queue's
        report = self.cp.tick()
        for entry in report.to_free:
            handle = self.replicas.get(entry.replica_id)
            if handle is not None and entry.session_id is not None:
                await asyncio.wait_for(handle.free.remote(entry.session_id), timeout=_CALL_TIMEOUT_S)
        self.recovery.pump()
        await self.runner.run_all(report.plans)

    # ---- sessions (called by the ingress) ----------------------------------------------------
    async def open_session(self, *, owner: str, model: str, context: Any, press: dict, ttl_s: float | None,
                           pinned: bool) -> dict:
        await self.ready()
        ctx = SessionContext(messages=tuple(context)) if isinstance(context, list) else SessionContext(text=context)
        record, decision = self.cp.open_session(model=model, context=ctx, press=PressSpec.model_validate(press),
                                                owner=owner, ttl_s=ttl_s, pinned=pinned)
        return {"session": record.model_dump(mode="json"), "replica": decision.replica_id}

    async def mark_loaded(self, session_id: str, stored: dict) -> dict:
        record = self.cp.mark_loaded(SessionId(session_id), **loaded_fields(stored))
        self.recovery.pump()  # background recovery held back by this load may go on now (recovery_queue)
        return record.model_dump(mode="json")

    async def relocate_load(self, session_id: str, failed_replica: str, to: str | None = None) -> str:
        """Place a first load again, away from ``failed_replica`` (its model actors died under it),
        or on ``to``; returns the new replica. NoReplicaAvailable / InsufficientCapacity if none is left."""
        record, decision = self.cp.relocate_load(SessionId(session_id), ReplicaId(failed_replica),
                                                 ReplicaId(to) if to else None)
        log.warning("session=%s: load moved from %s to %s (model actors lost)", record.id, failed_replica,
                    decision.replica_id)
        return decision.replica_id

    async def mark_load_failed(self, session_id: str, reason: str) -> dict:
        return self.cp.mark_load_failed(SessionId(session_id), reason).model_dump(mode="json")

    async def locate(self, session_id: str, owner: str) -> dict:
        """Where to send a question: ``{"replica", "read_tokens"}``; 404 / 409 errors as typed.

        A session being recovered is put first in the recovery queue and waited for, at most
        ``control.recovery.max_wait_s``; if it is still not back, SessionNotReady carries
        ``retry_after_s``, the queue's estimate."""
        await self.ready()
        sid = SessionId(session_id)
        try:
            replica = self.cp.locate(sid, owner=owner)
        except SessionNotReady as exc:
            if not await self.recovery.wait_for(sid, self.config.control.recovery.max_wait_s):
                if self.cp.view.session(sid).state is not SessionState.FAILED:  # failed: retrying won't help
                    exc.retry_after_s = retry_after_s(self.cp.recovery.estimate_s(sid))
                raise
            replica = self.cp.locate(sid, owner=owner)
        return {"replica": replica, "read_tokens": self.cp.view.session(sid).read_tokens}

    async def report_missing(self, session_id: str, owner: str, replica_id: str) -> None:
        """The ingress found ``replica_id`` without the session's cache (its decode actor died or
        restarted before a heartbeat said so): if the replica confirms it, the session is lost now
        and recovers first, instead of waiting for the next heartbeats."""
        record = self.cp.session(SessionId(session_id), owner=owner)
        if record.replica != replica_id or not record.servable:
            return
        try:
            holds = await asyncio.wait_for(self.replicas[replica_id].holds.remote(), timeout=_CALL_TIMEOUT_S)
        except Exception as exc:  # its decode actor is dead: whatever it held is gone
            log.warning("holds() of %s failed (%s): its caches are gone", replica_id, type(exc).__name__)
            holds = {}
            if isinstance(exc, ActorsRestarting):  # before its heartbeat says so: recover elsewhere now
                self.cp.view.restarting(ReplicaId(replica_id), self.cp.clock())
        if session_id not in holds:
            log.warning("session=%s is not held by %s (reported by a request); recovering it first", session_id,
                        replica_id)
            self.lost_sessions += 1
            for handle in [e.handle for e in self.cp.view.copies_of(record.id) if e.replica_id == replica_id] or [
                    f"lost-{session_id}"]:
                self.cp.apply_pool_event(ReplicaId(replica_id), {"kind": "evicted", "handle": handle,
                                                                 "session_id": session_id, "tier": "device",
                                                                 "nbytes": 0})

    async def session(self, session_id: str, owner: str | None) -> dict:
        return self.cp.session(SessionId(session_id), owner=owner).model_dump(mode="json")

    async def list_page(self, owner: str | None, **listing: Any) -> dict:
        """One page of the owner's sessions (control_plane.session_listing): ``{"data", "has_more"}``;
        live records as the view has them (fresher ``last_used_s``), tombstones from the store."""
        records = [self.cp.view.find_session(r.id) or r for r in self.cp.store.list(owner=owner)]
        state = listing.pop("state", None)
        page = page_sessions(records, state=SessionState(state) if state else None, **listing)
        return {"data": [r.model_dump(mode="json") for r in page.records], "has_more": page.has_more}

    async def update_session(self, session_id: str, owner: str | None, changes: dict) -> dict:
        """PATCH a session: ``changes`` holds ``ttl_s`` and/or ``pinned``. Pinning also pins the pool
        entry on the holding replica (the session must be ready: SessionNotReady otherwise)."""
        record = self.cp.session(SessionId(session_id), owner=owner)
        if "pinned" in changes and changes["pinned"] != record.pinned:
            if record.state not in (SessionState.READY, SessionState.SPILLED) or record.replica is None:
                raise SessionNotReady(f"session {session_id} is {record.state.value}; pin it once it is ready")
            await asyncio.wait_for(self.replicas[record.replica].admin.remote(
                "set_pinned", session_id, pinned=changes["pinned"]), timeout=_CALL_TIMEOUT_S)
        return self.cp.update_session(SessionId(session_id), owner=owner, **changes).model_dump(mode="json")

    async def delete_session(self, session_id: str, owner: str | None) -> dict:
        record, entries = self.cp.delete_session(SessionId(session_id), owner=owner)
        for entry in entries:
            if entry.replica_id in self.replicas and entry.session_id is not None:
                await asyncio.wait_for(self.replicas[entry.replica_id].free.remote(entry.session_id),
                                       timeout=_CALL_TIMEOUT_S)
        return record.model_dump(mode="json")

    async def record(self, session_id: str, owner: str | None, kind: str = "session") -> dict:
        """The live record; a deleted or expired one is a 404 that says so (its tombstone is read
        from the store), another owner's a plain 404 (UnknownSession)."""
        try:
            return self.cp.session(SessionId(session_id), owner=owner).model_dump(mode="json")
        except UnknownSession:
            tomb = self.cp.store.get(SessionId(session_id))
            if tomb is not None and (owner is None or tomb.owner == owner) and tomb.state is SessionState.DELETED:
                raise UnknownSession(f"{kind} {session_id!r} was {tomb.failure or 'deleted'} and is gone") from None
            raise UnknownSession(f"no {kind} {session_id!r} for this API key") from None

    async def replica_ids(self) -> list[str]:
        return list(self.replicas)

    async def cluster(self) -> dict:
        return {"replicas": [{"replica_id": r.replica_id, "node": r.node, "alive": r.alive, "draining": r.draining,
                              "queue_depth": r.queue_depth, "held_bytes": r.held_bytes.__dict__,
                              "capacity_bytes": r.capacity_bytes.__dict__,
                              "sessions": self.cp.view.session_count(r.replica_id)}
                             for r in self.cp.view.replicas()],
                "counters": dict(self.cp.counters) | self.runner.counters | self._recovery_counters()
                | {"lost_sessions": self.lost_sessions}, "time_s": time.time()}

    def _recovery_counters(self) -> dict[str, int]:
        """Recovery backlog and outcomes as flat counters (exported by /metrics)."""
        snap = self.cp.recovery.snapshot()
        done = snap["done"]
        return {"recovery_backlog": snap["waiting"] + snap["running"], "recovery_running": snap["running"],
                "recovered_by_read": done.get("read", 0), "recovered_by_rebuild": done.get("rebuild", 0),
                "recovery_failed": done.get("failed", 0)}

    # ---- admin (each returns an event id to poll, except the read-only ones) ------------------
    async def admin_action(self, action: str, **kwargs: Any) -> dict:
        await self.ready()
        return self.admin.dispatch(action, **kwargs)

    async def admin_event(self, event_id: str) -> dict:
        return self.cp.admin_event(event_id).model_dump(mode="json")

    async def stats(self) -> dict:
        context = ray.get_runtime_context()
        # Serve names its replica actors in its own namespace, not the job's
        actor = {"id": context.get_actor_id(), "name": context.get_actor_name(), "namespace": SERVE_NAMESPACE}
        return self.cp.stats() | {"runner": dict(self.runner.counters), "lost_sessions": self.lost_sessions,
                                  "actor": actor, "recovery": self.recovery.snapshot()}
