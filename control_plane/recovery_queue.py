"""RecoveryQueue: which lost sessions come back next, where, and how (read back or re-prefill).

Pure decisions, no Ray; the control shell carries the plans out (deployments/control/shell.py).
A session whose every copy is gone (restart, dead actor, eviction) waits here until a plan
brings it back. The order (docs/durability.md):

1. Sessions a request is waiting for (``demand``), oldest demand first. They start at once, in
   up to ``max_concurrent_demanded`` slots of their own, whatever the live traffic.
2. The rest, most recently used first, in up to ``max_concurrent`` background slots, and only
   onto replicas with no live work (loads or decodes a client is waiting for): live traffic first.
   Live work is what the replica's last heartbeat counted plus the client loads placed there and
   not finished (records in LOADING): a heartbeat comes every ``control_tick_s`` (2 s), a load
   takes a fraction of that, so the heartbeat alone would hardly ever see one.

How: when a replica lists a durable copy of the session (``note_persisted``) whose owner and
press match the record, the plan reads it back (``read_persisted``): on that replica if it is
accepting work, not restarting its actors, and has room; else on another replica of the same node,
which reads the holder's files (``read_from``: after a SIGKILL the holder spends seconds loading
its model, a read takes milliseconds); else on the restarting holder. Otherwise it re-prefills
wherever there is room, off restarting replicas while another has room. The shell falls back to the
re-prefill itself if the read fails (missing file, checksum, model or dtype) - logged and counted.

``estimate_s`` turns the queue position into the seconds a refused request should wait
(``Retry-After``), from measured average durations of reads and rebuilds.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from control_plane.cluster_view import ClusterView
from control_plane.config import ControlPlaneConfig, RecoveryConfig
from control_plane.ids import ReplicaId, SessionId
from control_plane.migration.orphans import is_orphan
from control_plane.migration.plan import MigrationMethod, MigrationPlan, MigrationReason
from control_plane.migration.targets import TargetPicker
from control_plane.replica import ReplicaView
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from kvpool.press_spec import PressSpec

READ, REBUILD = "read", "rebuild"
_EWMA = 0.3  # weight of the newest duration in the running averages


@dataclass
class _Waiting:
    last_used_s: float
    demanded_at_s: float | None = None


@dataclass
class _Running:
    action: str
    target: ReplicaId
    started_s: float
    demanded: bool


@dataclass
class RecoveryProgress:
    """Counts since the control plane started: what /admin/health shows."""

    done: Counter[str] = field(default_factory=Counter)  # read, rebuild, failed, read_fallback_<reason>


def copy_matches(record: SessionRecord, copy: Mapping[str, Any]) -> bool:
    """A listed durable copy may stand for ``record``: same owner and press where the copy records them."""
    owner, press = copy.get("owner"), copy.get("press")
    return (owner is None or owner == record.owner) and (press is None or PressSpec.model_validate(press)
                                                          == record.press_spec)


class RecoveryQueue:
    def __init__(self, config: RecoveryConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self._waiting: dict[SessionId, _Waiting] = {}
        self._running: dict[SessionId, _Running] = {}
        self._copies: dict[ReplicaId, Mapping[str, Mapping[str, Any]]] = {}
        self._mean_s = {READ: config.read_estimate_s, REBUILD: config.rebuild_estimate_s}
        self.progress = RecoveryProgress()

    # ---- facts ------------------------------------------------------------------------------

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._waiting or session_id in self._running

    def note_persisted(self, replica_id: ReplicaId, listing: Mapping[str, Mapping[str, Any]]) -> None:
        """The durable copies ``replica_id`` holds now (``{session_id: {"owner", "press", ...}}``)."""
        self._copies[replica_id] = dict(listing)

    def persisted_on(self, session_id: SessionId) -> dict[ReplicaId, Mapping[str, Any]]:
        return {r: listing[session_id] for r, listing in self._copies.items() if session_id in listing}

    def add(self, record: SessionRecord) -> None:
        """Queue a lost session for background recovery (no-op if queued or running)."""
        if record.id not in self:
            self._waiting[record.id] = _Waiting(record.last_used_s)

    def demand(self, record: SessionRecord) -> None:
        """A request waits for this session: it goes before every background recovery."""
        if record.id in self._running:
            return
        waiting = self._waiting.setdefault(record.id, _Waiting(record.last_used_s))
        if waiting.demanded_at_s is None:
            waiting.demanded_at_s = self.clock()

    def add_orphans(self, view: ClusterView, busy: Callable[[SessionId], bool]) -> int:
        """Queue every session that lost all its copies and no job drives (the shell calls this
        before each tick, so the tick's one-by-one orphan rebuilds never see them); returns the
        backlog (waiting + running)."""
        for record in view.sessions():
            if is_orphan(view, record) and not busy(record.id):
                self.add(record)
        return len(self._waiting) + len(self._running)

    def demand_orphan(self, view: ClusterView, session_id: SessionId, busy: Callable[[SessionId], bool]) -> bool:
        """``demand`` the session if it is an orphan no job drives; False otherwise (ready,
        loading, failed, or a migration already brings it back). UnknownSession if unknown."""
        record = view.session(session_id)
        if busy(session_id) or not is_orphan(view, record):
            return session_id in self._running
        self.demand(record)
        return True

    def forget(self, session_id: SessionId) -> None:
        """Drop a waiting session (deleted, or back without help)."""
        self._waiting.pop(session_id, None)

    # ---- decisions --------------------------------------------------------------------------

    def order(self) -> list[SessionId]:
        """Waiting sessions in the order they start: demanded (oldest demand first), then most recently used."""
        demanded = sorted((w.demanded_at_s, s) for s, w in self._waiting.items() if w.demanded_at_s is not None)
        background = sorted((-w.last_used_s, s) for s, w in self._waiting.items() if w.demanded_at_s is None)
        return [s for _, s in demanded] + [s for _, s in background]

    def next_plans(self, view: ClusterView, config: ControlPlaneConfig, live_work: Mapping[ReplicaId, int],
                   busy: Callable[[SessionId], bool]) -> list[MigrationPlan]:
        """Plans to start now, each already counted as running (report with ``finished``).

        ``live_work``: per replica, loads and decodes clients wait for (recoveries excluded);
        ``busy``: sessions another job already drives (left waiting). Sessions that are no longer
        orphans (deleted, or a copy came back) leave the queue.
        """
        picker = TargetPicker(view, max_pressure=config.pressure_threshold, allow_spill=True)
        plans: list[MigrationPlan] = []
        with_live_work: set[ReplicaId] | None = None  # computed once, for the first background session
        for session_id in self.order():
            record = view.find_session(session_id)
            if record is None or not is_orphan(view, record):
                self.forget(session_id)
                continue
            demanded = self._waiting[session_id].demanded_at_s is not None
            if not self._slot_free(demanded) or busy(session_id):
                continue
            if not demanded and with_live_work is None:
                with_live_work = _with_live_work(view, live_work)
            plan = self._plan(record, view, picker, set() if demanded else with_live_work, background=not demanded)
            if plan is None:
                continue
            del self._waiting[session_id]
            self._running[session_id] = _Running(READ if plan.read_persisted else REBUILD, plan.target,
                                                 self.clock(), demanded)
            plans.append(plan)
        return plans

    def _slot_free(self, demanded: bool) -> bool:
        running = sum(1 for r in self._running.values() if r.demanded == demanded)
        return running < (self.config.max_concurrent_demanded if demanded else self.config.max_concurrent)

    def _plan(self, record: SessionRecord, view: ClusterView, picker: TargetPicker,
              busy_replicas: set[ReplicaId], background: bool) -> MigrationPlan | None:
        """Read a matching durable copy back where a replica can (``_readers``), else re-prefill on
        the least loaded replica, one restarting its actors only if no other has room.
        ``busy_replicas``: replicas with live work, which this plan must not use; ``background``:
        no request waits for the session (its re-prefill will yield to live prefills)."""
        allowed = {r.replica_id: r for r in view.accepting_replicas() if r.replica_id not in busy_replicas}
        others = [r.replica_id for r in view.replicas()]
        holders = sorted(r for r, copy in self.persisted_on(record.id).items() if copy_matches(record, copy))
        for holder, reader in _readers(holders, view, allowed):
            if picker.pick(record.stored_bytes, exclude=[r for r in others if r != reader]) is not None:
                own = reader == holder
                return self._make(record, reader, True, f"read back the durable copy on {holder}"
                                  + ("" if own else f" from {reader} (same node)"), background, None if own else holder)
        for restarting_ok in (False, True):
            usable = {r for r, v in allowed.items() if restarting_ok or not v.restarting}
            target = picker.pick(record.stored_bytes, exclude=[r for r in others if r not in usable])
            if target is not None:
                why = "no usable durable copy" if not holders else "no replica that can read the durable copy has room"
                return self._make(record, target.replica_id, False, f"{why}; re-prefill the stored context",
                                  background)
        return None

    @staticmethod
    def _make(record: SessionRecord, target: ReplicaId, read: bool, detail: str, background: bool,
              read_from: ReplicaId | None = None) -> MigrationPlan:
        return MigrationPlan(session_id=record.id, source=None, target=target, reason=MigrationReason.COPY_LOST,
                             method=MigrationMethod.REBUILD, stored_bytes=record.stored_bytes,
                             read_persisted=read, read_from=read_from, detail=detail, background=background)

    # ---- outcomes and estimates ----------------------------------------------------------------

    def finished(self, session_id: SessionId, outcome: str, elapsed_s: float) -> None:
        """A started plan ended: ``outcome`` is ``read``, ``rebuild`` or ``failed``."""
        self._running.pop(session_id, None)
        self.progress.done[outcome] += 1
        if outcome in self._mean_s:
            self._mean_s[outcome] = (1 - _EWMA) * self._mean_s[outcome] + _EWMA * elapsed_s

    def note_fallback(self, reason: str) -> None:
        """A read-back failed (``reason``: missing, corrupt, mismatch ...) and the session was re-prefilled."""
        self.progress.done[f"read_fallback_{reason}"] += 1

    def estimate_s(self, session_id: SessionId) -> float:
        """Seconds until ``session_id`` is likely back: the rest of its run if running, else the
        work ahead of it spread over its slots, plus its own run."""
        running = self._running.get(session_id)
        if running is not None:
            return max(1.0, self._mean_s[running.action] - (self.clock() - running.started_s))
        order = self.order()
        if session_id not in order:
            return self._mean_s[REBUILD]
        demanded = self._waiting[session_id].demanded_at_s is not None
        slots = self.config.max_concurrent_demanded if demanded else self.config.max_concurrent
        ahead = order[:order.index(session_id)]
        ahead_s = sum(self._mean_s[self._likely(s)] for s in ahead)
        ahead_s += sum(max(0.0, self._mean_s[r.action] - (self.clock() - r.started_s))
                       for r in self._running.values())
        return max(1.0, ahead_s / slots + self._mean_s[self._likely(session_id)])

    def _likely(self, session_id: SessionId) -> str:
        return READ if self.persisted_on(session_id) else REBUILD

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready backlog and progress (``/admin/health``'s ``recovery``)."""
        return {"waiting": len(self._waiting),
                "waiting_demanded": sum(1 for w in self._waiting.values() if w.demanded_at_s is not None),
                "running": len(self._running),
                "running_reads": sum(1 for r in self._running.values() if r.action == READ),
                "done": dict(self.progress.done),
                "mean_s": {k: round(v, 3) for k, v in self._mean_s.items()},
                "persisted_copies": sum(len(listing) for listing in self._copies.values())}


def _readers(holders: list[ReplicaId], view: ClusterView,
             allowed: Mapping[ReplicaId, ReplicaView]) -> Iterator[tuple[ReplicaId, ReplicaId]]:
    """``(holder, reader)`` pairs in the order a read is tried: each holder reading its own copy;
    another allowed replica on a holder's node reading the holder's files (the holder is restarting
    its actors, dead, busy or full); last, a restarting holder (its read waits for its model).
    Only ``allowed`` replicas read."""
    for holder in holders:
        if holder in allowed and not allowed[holder].restarting:
            yield holder, holder
    for holder in holders:
        node = view.find_replica(holder)
        for reader in sorted(r for r, v in allowed.items() if r != holder and not v.restarting
                             and node is not None and v.node == node.node):
            yield holder, reader
    for holder in holders:
        if holder in allowed and allowed[holder].restarting:
            yield holder, holder


def retry_after_s(estimate_s: float) -> int:
    """Whole seconds for an HTTP ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(estimate_s))


def _with_live_work(view: ClusterView, live_work: Mapping[ReplicaId, int]) -> set[ReplicaId]:
    """Replicas with live work: loads or decodes their last heartbeat counted (``live_work``), or a
    client load placed there since and not finished (a record in LOADING; rebuilds are REBUILDING)."""
    busy = {r for r, n in live_work.items() if n > 0}
    return busy | {r.replica for r in view.sessions() if r.state is SessionState.LOADING and r.replica is not None}
