"""ControlPlane: the one object the Serve shell (deployments/control/shell.py) holds.

No Ray here. The shell feeds facts in (``heartbeat``, ``apply_pool_event``, ``mark_dead``, step
results) and carries decisions out (placements, migration plans and job steps, entries to free).
Every record change is written to the durable store before it is visible to ``locate``; a new
ControlPlane on the same store resumes where a killed one stopped (see control_plane.recovery).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from control_plane.admin_events import AdminEventLog
from control_plane.cluster_view import ClusterView, PoolEntry
from control_plane.config import ControlPlaneConfig
from control_plane.context import SessionContext
from control_plane.errors import UnknownSession
from control_plane.ids import ANONYMOUS_OWNER, JobId, ReplicaId, SessionId, new_session_id
from control_plane.migration import (
    MigrationJob, MigrationMethod, MigrationPlan, StepResult, plan_admin_move, plan_drain, plan_replica_death,
)
from control_plane.migration.per_tick import plan_tick_migrations
from control_plane.migration_jobs import MigrationJobs
from control_plane.placement import PlacementDecision, PlacementPolicy, PlacementRequest, make_placement_policy
from control_plane.recovery import recover_records
from control_plane.recovery_queue import RecoveryQueue
from control_plane.replica import ReplicaStats, ReplicaView, resting_state
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from control_plane.store import SessionStore, open_store
from control_plane.transient_sweep import TRANSIENT_STATES, TransientSweep
from kvpool.handles import Tier
from kvpool.press_spec import NO_PRESS, PressSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickReport:
    """What one ``tick`` decided: replicas declared dead, sessions expired (now DELETED), pool
    entries to free (of expired sessions, and strays nothing routes to), and plans to start."""

    dead_replicas: list[ReplicaId]
    expired: list[SessionRecord]
    to_free: list[PoolEntry]
    plans: list[MigrationPlan]
    repaired: list[SessionRecord] = ()  # overstayed a transient state (control_plane.transient_sweep)


class ControlPlane(AdminEventLog):
    """Session registry + placement + migration decisions over one durable store (and its admin
    events: ``AdminEventLog``).

    ``store`` and ``placement`` default to what ``config`` names; ``clock`` returns seconds.
    """

    def __init__(self, config: ControlPlaneConfig, *, store: SessionStore | None = None,
                 placement: PlacementPolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store if store is not None else open_store(config)
        self.placement = placement or make_placement_policy(config.placement_policy, config)
        self.clock = clock
        self.view = ClusterView(heartbeat_timeout_s=config.heartbeat_timeout_s)
        self.counters: Counter[str] = Counter()
        self.jobs = MigrationJobs(self.view, self._save, retries=config.migration_retries, counters=self.counters)
        self._touched: dict[SessionId, None] = {}
        self.sweep = TransientSweep(config.transient_timeout_s)  # counts into sessions_repaired (exported at 0)
        self.counters["sessions_repaired"] = 0
        self.recovery = RecoveryQueue(config.recovery, clock)  # lost sessions, fed and drained by the shell
        self._recover()

    def _recover(self) -> None:
        live, changed = recover_records(self.store.list())
        self.store.upsert_many(changed)
        now_s = self.clock()
        for record in live:
            self.view.put_session(record)
            for replica_id in (record.replica, record.target_replica):
                if replica_id is not None:
                    self.view.expect_replica(replica_id, now_s)
        self.counters["sessions_recovered"] += len(live)
        if changed:
            log.warning("restart recovery changed %d of %d sessions", len(changed), len(live))

    def _save(self, record: SessionRecord) -> None:
        """Persist first, then make it visible: a crash never leaves the view ahead of the store."""
        self.store.upsert(record)
        self.view.put_session(record)
        self._touched.pop(record.id, None)

    # ---- sessions -------------------------------------------------------------------------
    def open_session(self, *, model: str, context: SessionContext, press: PressSpec = NO_PRESS,
                     owner: str = ANONYMOUS_OWNER, ttl_s: float | None = None, pinned: bool = False,
                     estimated_bytes: int = 0, session_id: SessionId | None = None,
                     replica: ReplicaId | None = None) -> tuple[SessionRecord, PlacementDecision]:
        """Place a new session and store it LOADING on the chosen replica; the shell then prefills
        there and calls ``mark_loaded`` (or ``mark_load_failed``). ``ttl_s`` defaults to
        ``config.default_ttl_s``; ``replica``: put it there (a turn stays with the cache it extends).
        Raises NoReplicaAvailable (503) / InsufficientCapacity (429) before anything is stored."""
        record = SessionRecord.new(session_id or new_session_id(), model=model, context=context, press=press,
                                   now_s=self.clock(), owner=owner, pinned=pinned,
                                   ttl_s=self.config.default_ttl_s if ttl_s is None else ttl_s)
        decision = (self._on_cache_holder(record.id, replica) if replica is not None else
                    self.placement.place(PlacementRequest.for_record(record, estimated_bytes=estimated_bytes), self.view))
        record = record.model_copy(update={"replica": decision.replica_id, "node": decision.node})
        self._save(record)
        self.counters["sessions_opened"] += 1
        return record, decision

    def mark_loaded(self, session_id: SessionId, *, read_tokens: int, kept_tokens: int, stored_bytes: int,
                    codec: str = "none", tier: Tier | None = None, **final: Any) -> SessionRecord:
        """The prefill finished and the pool holds the cache (in ``tier``, default the replica's
        primary tier): LOADING -> READY, or SPILLED if lower; ``final``: a stored response's
        ``context`` and ``response`` (known once generated). InvalidTransition otherwise."""
        record = self.view.session(session_id)
        replica = self.view.find_replica(record.replica) if record.replica else None
        primary = replica.primary_tier if replica else None
        tier = tier or primary or Tier.HOST
        record = record.transition(resting_state(tier, primary), read_tokens=read_tokens, kept_tokens=kept_tokens,
                                   stored_bytes=stored_bytes, codec=codec, tier=tier, **final)
        self._save(record)
        return record

    def relocate_load(self, session_id: SessionId, failed: ReplicaId,
                      to: ReplicaId | None = None) -> tuple[SessionRecord, PlacementDecision]:
        """A first load whose replica lost its model actors moves on: ``failed`` is marked restarting
        (placement avoids it until its next full heartbeat) and the LOADING record is placed again
        without it, or put on ``to`` (a stored response's turn follows the cache it extends).
        Raises NoReplicaAvailable (503) / InsufficientCapacity (429) if none is left."""
        self.view.restarting(failed, self.clock())
        record = self.view.session(session_id)
        decision = (self._on_cache_holder(record.id, to) if to is not None else
                    self.placement.place(PlacementRequest.for_record(record, exclude=[failed]), self.view))
        record = record.model_copy(update={"replica": decision.replica_id, "node": decision.node,
                                           "version": record.version + 1})
        self._save(record)
        return record, decision

    def _on_cache_holder(self, session_id: SessionId, replica: ReplicaId) -> PlacementDecision:
        node = getattr(self.view.find_replica(replica), "node", None)
        return PlacementDecision(session_id, replica, node, "chain", "extends a cache this replica holds")

    def mark_load_failed(self, session_id: SessionId, reason: str) -> SessionRecord:
        """The first prefill failed for good: LOADING -> FAILED with ``reason``."""
        record = self.view.session(session_id).transition(SessionState.FAILED, failure=reason)
        self._save(record)
        return record

    def session(self, session_id: SessionId, *, owner: str | None = None) -> SessionRecord:
        """The live record; with ``owner``, another owner's session is reported as unknown (404)."""
        record = self.view.session(session_id)
        if owner is not None and record.owner != owner:
            raise UnknownSession(f"no live session {session_id!r} for this API key")
        return record

    def locate(self, session_id: SessionId, *, owner: str | None = None, touch: bool = True) -> ReplicaId:
        """The replica to send a question to; refreshes the session's idle TTL (persisted at the
        next ``tick``). Raises UnknownSession (404) or SessionNotReady (409)."""
        self.session(session_id, owner=owner)
        replica_id = self.view.locate(session_id)
        if touch:
            record = self.view.session(session_id)  # hot path: a float field, no re-validation needed
            self.view.put_session(record.model_copy(update={"last_used_s": self.clock(), "version": record.version + 1}))
            self._touched[session_id] = None
        return replica_id

    def update_session(self, session_id: SessionId, *, owner: str | None = None, **changes: Any) -> SessionRecord:
        """Change a session's ``ttl_s`` (None: never expires) and/or ``pinned`` (``PATCH
        /v1/sessions/{id}``); other fields are refused with ValueError. UnknownSession (404) for
        another owner's session; the caller pins the pool entry itself (see set_pinned)."""
        unknown = set(changes) - {"ttl_s", "pinned"}
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}; only ttl_s and pinned")
        record = self.session(session_id, owner=owner).updated(**changes)
        self._save(record)
        self.counters["sessions_updated"] += 1
        return record

    def set_pinned(self, session_id: SessionId, pinned: bool) -> SessionRecord:
        record = self.view.session(session_id).updated(pinned=pinned)
        self._save(record)
        return record

    def delete_session(self, session_id: SessionId, *, owner: str | None = None,
                       reason: str = "deleted") -> tuple[SessionRecord, list[PoolEntry]]:
        """Mark DELETED (kept as a tombstone in the store) and return every pool entry of the
        session, on every replica, for the shell to free. A running job is aborted if it can be."""
        record = self.session(session_id, owner=owner)
        entries = self.view.copies_of(session_id)
        job = self.jobs.for_session(session_id)
        if job is not None and not job.flipped:
            self.jobs.abort(job.job_id, f"session {reason}")
        deleted = record.transition(SessionState.DELETED, failure=reason)
        self._save(deleted)
        self.counters[f"sessions_{reason}"] += 1
        return deleted, entries

    # ---- facts from the shell -------------------------------------------------------------
    def heartbeat(self, replica_id: ReplicaId, stats: ReplicaStats) -> ReplicaView:
        return self.view.heartbeat(replica_id, stats, self.clock())

    def apply_pool_event(self, replica_id: ReplicaId, event: Any) -> SessionRecord | None:
        """Apply a KV pool event (see ClusterView.apply_pool_event); a changed record is persisted."""
        record = self.view.apply_pool_event(replica_id, event)
        if record is not None:
            self._save(record)
            if record.state is SessionState.REBUILDING:
                self.counters["copies_lost"] += 1
                log.warning("session=%s lost its only copy on %s; it will be rebuilt", record.id, replica_id)
        return record

    def mark_dead(self, replica_id: ReplicaId) -> list[MigrationPlan]:
        """Declare a replica dead and return the plans that re-home its sessions."""
        self.view.mark_dead(replica_id)
        self.counters["replicas_dead"] += 1
        return plan_replica_death(self.view, replica_id, self.config)

    def drain(self, replica_id: ReplicaId) -> list[MigrationPlan]:
        """Stop placing on ``replica_id`` and return plans moving its sessions away (``tick`` keeps
        planning until it is empty)."""
        self.view.set_draining(replica_id)
        return plan_drain(self.view, replica_id, self.config)

    def plan_move(self, session_id: SessionId, target: ReplicaId | None = None,
                  method: MigrationMethod = MigrationMethod.TRANSFER) -> MigrationPlan:
        """Admin move (see migration.plan_admin_move)."""
        return plan_admin_move(self.view, session_id, self.config, target, method)

    # ---- periodic decisions -----------------------------------------------------------------
    def tick(self, now_s: float | None = None) -> TickReport:
        """Run the periodic decisions at ``now_s`` (default: the clock): expire silent replicas
        and idle sessions, list strays to free, and plan recovery, drains and pressure relief
        (at most ``max_migrations_per_tick`` plans, sessions with a running job left alone)."""
        now_s = self.clock() if now_s is None else now_s
        self.flush()
        dead = self.view.expire_heartbeats(now_s)
        expired: list[SessionRecord] = []
        to_free: dict[tuple[ReplicaId, str], PoolEntry] = {}
        for record in self.view.expired_sessions(now_s):
            deleted, entries = self.delete_session(record.id, reason="expired")
            expired.append(deleted)
            to_free.update(((e.replica_id, e.handle), e) for e in entries)
        for replica in self.view.alive_replicas():
            to_free.update(((e.replica_id, e.handle), e) for e in self.view.stray_entries(replica.replica_id)
                           if self.jobs.for_session(e.session_id) is None)
        repaired = self._repair_overstays(now_s)
        return TickReport(dead_replicas=dead, expired=expired, to_free=list(to_free.values()), plans=self._plans(),
                          repaired=repaired)

    def _repair_overstays(self, now_s: float) -> list[SessionRecord]:
        """Store the sweep's repairs; counted in ``sessions_repaired`` (and per state)."""
        records = [r for r in self.view.sessions() if r.state in TRANSIENT_STATES]
        repairs = self.sweep.overdue(records, now_s, {r.id for r in records if self.jobs.for_session(r.id)})
        for repair in repairs:
            log.warning("session=%s overstayed %s: %s", repair.before.id, repair.before.state.value, repair.after.failure)
            self._save(repair.after)
            self.counters.update(("sessions_repaired", f"sessions_repaired_{repair.before.state.value}"))
        return [repair.after for repair in repairs]

    def _plans(self) -> list[MigrationPlan]:
        # orphans the shell handed to the recovery queue (RecoveryQueue.add_orphans) are its to plan
        return plan_tick_migrations(self.view, self.config, lambda s: self.jobs.has(s) or s in self.recovery)

    def flush(self) -> None:
        """Persist the idle-TTL refreshes ``locate`` made since the last flush."""
        touched = [self.view.session(s) for s in self._touched if self.view.find_session(s) is not None]
        self.store.upsert_many(touched)
        self._touched.clear()

    # ---- migrations -------------------------------------------------------------------------
    def start_migration(self, plan: MigrationPlan) -> MigrationJob:
        """Begin carrying out a plan; drive it with ``job.next_step()`` and ``report_step``."""
        return self.jobs.start(plan)

    def report_step(self, job_id: JobId, result: StepResult) -> MigrationJob:
        """Result of the job's current step (see MigrationJobs.report); the flip happens here."""
        return self.jobs.report(job_id, result)

    def stats(self) -> dict[str, Any]:
        """JSON-ready snapshot for the admin ``stats``/``health`` actions and metrics export."""
        states = Counter(r.state.value for r in self.view.sessions())
        replicas = {r.replica_id: {
            "node": r.node, "alive": r.alive, "draining": r.draining, "queue_depth": r.queue_depth,
            "pressure": r.pressure(), "sessions": self.view.session_count(r.replica_id),
            "held_bytes": vars(r.held_bytes), "capacity_bytes": vars(r.capacity_bytes),
        } for r in self.view.replicas()}
        return {"sessions": dict(states), "replicas": replicas, "migrations_in_flight": len(self.jobs),
                "counters": dict(self.counters), "recovery": self.recovery.snapshot()}

    def close(self) -> None:
        """Persist pending TTL refreshes and close the store."""
        self.flush()
        self.store.close()
