"""ClusterView: the control plane's in-memory picture of replicas, sessions and pool entries.

Fed by the Serve shell (``heartbeat``, ``mark_dead``, ``apply_pool_event``) and by the session
registry (``put_session``); read by placement and migration policies. It never talks to a replica
and never touches the store: methods that change a session record return the new record, and the
caller persists it.

Byte accounting: every pool entry (handle) a replica reports is tracked with its tier and size, so
a replica's held bytes per tier are the running sum of its events. A heartbeat that carries the
pool's own ``held_bytes`` replaces that sum (events then apply on top, until the next heartbeat).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

from control_plane.errors import SessionNotReady, UnknownReplica, UnknownSession
from control_plane.ids import NodeId, ReplicaId, SessionId
from control_plane.pending_loads import PendingLoads
from control_plane.pool_events import PoolEventFacts, owner_copy_changed, owner_copy_lost
from control_plane.replica import ReplicaStats, ReplicaView, TierBytes
from control_plane.session import SessionRecord
from control_plane.states import SessionState
from kvpool.handles import Tier
from control_plane.ttl import expired_sessions


@dataclass(frozen=True)
class PoolEntry:
    """One entry a replica's pool reported holding (``handle`` is the id: ``kvpool.KVHandle(handle)``)."""

    replica_id: ReplicaId
    handle: str
    session_id: SessionId | None
    tier: Tier
    stored_bytes: int


class ClusterView:
    """Replicas, live sessions and pool entries, with the queries policies need.

    ``heartbeat_timeout_s``: a replica silent for longer is declared dead by ``expire_heartbeats``.
    """

    def __init__(self, *, heartbeat_timeout_s: float) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._replicas: dict[ReplicaId, ReplicaView] = {}
        self._sessions: dict[SessionId, SessionRecord] = {}
        self._owned: dict[ReplicaId, dict[SessionId, None]] = defaultdict(dict)  # insertion-ordered set
        self._heading_to: dict[ReplicaId, dict[SessionId, None]] = defaultdict(dict)
        self._by_context: dict[str, Counter[ReplicaId]] = defaultdict(Counter)
        self._by_owner: dict[str, Counter[ReplicaId]] = defaultdict(Counter)
        self._entries: dict[ReplicaId, dict[str, PoolEntry]] = defaultdict(dict)
        self._copies: dict[SessionId, dict[str, PoolEntry]] = defaultdict(dict)  # session -> handle -> entry
        self._pending = PendingLoads()  # placed since the replica's last heartbeat: added to its queue depth

    # ---- replicas -------------------------------------------------------------------------

    def heartbeat(self, replica_id: ReplicaId, stats: ReplicaStats, now_s: float) -> ReplicaView:
        """Register or refresh a replica; it is alive from now on (a dead replica comes back)."""
        previous = self._replicas.get(replica_id)
        if stats.held_bytes is not None:
            held = TierBytes.from_mapping(stats.held_bytes)
        else:
            held = previous.held_bytes if previous else TierBytes()
        view = ReplicaView(
            replica_id=replica_id, node=stats.node, alive=True, last_heartbeat_s=now_s,
            capacity_bytes=TierBytes.from_mapping(stats.capacity_bytes), held_bytes=held,
            queue_depth=stats.queue_depth, draining=stats.draining,
        )
        self._replicas[replica_id] = view
        self._pending.beat(replica_id)
        return view

    def expect_replica(self, replica_id: ReplicaId, now_s: float) -> ReplicaView:
        """Register a replica that stored records name but that has not reported yet (after a
        restart). It takes nothing (draining) until its first heartbeat, and is declared dead by
        ``expire_heartbeats`` if that heartbeat never comes. A known replica is left unchanged."""
        if replica_id not in self._replicas:
            self._replicas[replica_id] = ReplicaView(
                replica_id=replica_id, node=NodeId("unknown"), alive=True, last_heartbeat_s=now_s,
                capacity_bytes=TierBytes(), held_bytes=TierBytes(), draining=True,
            )
        return self._replicas[replica_id]

    def mark_dead(self, replica_id: ReplicaId) -> ReplicaView:
        """Declare a replica dead (its device and host entries are gone; disk entries may survive)."""
        view = replace(self.replica(replica_id), alive=False)
        self._replicas[replica_id] = view
        return view

    def restarting(self, replica_id: ReplicaId, now_s: float) -> ReplicaView:
        """A replica answered that its model actors are being restarted (one died): it is alive,
        but new sessions go elsewhere while another replica has room (``eligible_replicas``);
        its next full heartbeat clears the flag."""
        known = self._replicas.get(replica_id) or self.expect_replica(replica_id, now_s)  # first beat after a restart
        view = replace(known, restarting=True, last_heartbeat_s=now_s)
        self._replicas[replica_id] = view
        return view

    def set_draining(self, replica_id: ReplicaId, draining: bool = True) -> ReplicaView:
        """Stop (or resume) placing sessions on a replica, before its next heartbeat says so."""
        view = replace(self.replica(replica_id), draining=draining)
        self._replicas[replica_id] = view
        return view

    def expire_heartbeats(self, now_s: float) -> list[ReplicaId]:
        """Mark dead every alive replica silent for more than ``heartbeat_timeout_s``; return them."""
        late = [r.replica_id for r in self._replicas.values()
                if r.alive and now_s - r.last_heartbeat_s > self.heartbeat_timeout_s]
        for replica_id in late:
            self.mark_dead(replica_id)
        return late

    def replica(self, replica_id: ReplicaId) -> ReplicaView:
        """The replica's snapshot; UnknownReplica if it never sent a heartbeat."""
        try:
            return self._with_pending(self._replicas[replica_id])
        except KeyError:
            known = ", ".join(sorted(self._replicas)) or "none yet"
            raise UnknownReplica(f"replica {replica_id!r} has not sent a heartbeat; known replicas: {known}") from None

    def find_replica(self, replica_id: ReplicaId) -> ReplicaView | None:
        view = self._replicas.get(replica_id)
        return None if view is None else self._with_pending(view)

    def replicas(self) -> list[ReplicaView]:
        return [self._with_pending(self._replicas[r]) for r in sorted(self._replicas)]

    def _with_pending(self, view: ReplicaView) -> ReplicaView:  # + loads its last heartbeat did not count yet
        return replace(view, queue_depth=view.queue_depth + n) if (n := self._pending.count(view.replica_id)) else view

    def alive_replicas(self) -> list[ReplicaView]:
        return [r for r in self.replicas() if r.alive]

    def accepting_replicas(self) -> list[ReplicaView]:
        """Alive and not draining: where new sessions and migrations may go."""
        return [r for r in self.replicas() if r.accepts_sessions]

    def pressure(self, replica_id: ReplicaId) -> float:
        """Device bytes held over device capacity (see ReplicaView.pressure)."""
        return self.replica(replica_id).pressure()

    # ---- sessions -------------------------------------------------------------------------

    def put_session(self, record: SessionRecord) -> None:
        """Insert or replace a session record; a DELETED record leaves the view."""
        old = self._sessions.pop(record.id, None)
        self._pending.update(old, record)
        if old is not None:
            self._unindex(old)
        if record.state is SessionState.DELETED:
            return
        self._sessions[record.id] = record
        self._index(record)

    def session(self, session_id: SessionId) -> SessionRecord:
        """The live session's record; UnknownSession if there is none."""
        record = self._sessions.get(session_id)
        if record is None:
            raise UnknownSession(f"no live session {session_id!r}; it expired, was deleted or never existed - "
                                 "create it again with POST /v1/sessions")
        return record

    def find_session(self, session_id: SessionId) -> SessionRecord | None:
        return self._sessions.get(session_id)

    def sessions(self) -> Iterator[SessionRecord]:
        return iter(list(self._sessions.values()))

    def session_count(self, replica_id: ReplicaId | None = None) -> int:
        return len(self._sessions) if replica_id is None else len(self._owned.get(replica_id, ()))

    def sessions_on(self, replica_id: ReplicaId) -> list[SessionRecord]:
        """Sessions whose answering copy (``record.replica``) is on this replica."""
        return [self._sessions[s] for s in self._owned.get(replica_id, ())]

    def sessions_heading_to(self, replica_id: ReplicaId) -> list[SessionRecord]:
        """Sessions a migration or rebuild is moving onto this replica (``record.target_replica``)."""
        return [self._sessions[s] for s in self._heading_to.get(replica_id, ())]

    def expired_sessions(self, now_s: float) -> list[SessionRecord]:
        """Sessions whose TTL has run out at ``now_s`` (see control_plane.ttl)."""
        return expired_sessions(self._sessions.values(), now_s)

    def locate(self, session_id: SessionId) -> ReplicaId:
        """The replica that answers this session now.

        Raises UnknownSession (404), or SessionNotReady (409) while it loads, rebuilds, has failed
        or its replica is dead.
        """
        record = self.session(session_id)
        if record.servable:
            replica = self._replicas.get(record.replica)
            if replica is not None and replica.alive:
                return record.replica
            raise SessionNotReady(f"session {session_id} is being recovered from dead replica {record.replica}; "
                                  "retry in a few seconds")
        if record.state is SessionState.FAILED:
            raise SessionNotReady(f"session {session_id} failed ({record.failure}); delete it or ask an admin "
                                  "to rebuild it")
        raise SessionNotReady(f"session {session_id} is {record.state.value}; retry in a few seconds")

    def context_replicas(self, context_hash: str) -> Mapping[ReplicaId, int]:
        """replica -> number of servable sessions with this context hash on it."""
        return self._by_context.get(context_hash, Counter())

    def owner_replicas(self, owner: str) -> Mapping[ReplicaId, int]:
        """replica -> number of servable sessions of this owner on it."""
        return self._by_owner.get(owner, Counter())

    def _index(self, record: SessionRecord) -> None:
        if record.target_replica is not None:
            self._heading_to[record.target_replica][record.id] = None
        if record.replica is None:
            return
        self._owned[record.replica][record.id] = None
        if record.servable:
            self._by_context[record.context_hash][record.replica] += 1
            self._by_owner[record.owner][record.replica] += 1

    def _unindex(self, record: SessionRecord) -> None:
        if record.target_replica is not None:
            self._heading_to[record.target_replica].pop(record.id, None)
        if record.replica is None:
            return
        self._owned[record.replica].pop(record.id, None)
        if record.servable:
            for index, key in ((self._by_context, record.context_hash), (self._by_owner, record.owner)):
                counts = index[key]
                counts[record.replica] -= 1
                if counts[record.replica] <= 0:
                    del counts[record.replica]
                if not counts:
                    del index[key]

    # ---- pool entries ---------------------------------------------------------------------

    def apply_pool_event(self, replica_id: ReplicaId, event: Any) -> SessionRecord | None:
        """Apply one KV pool event from ``replica_id``; return the session record it changed, if any.

        The returned record is already in the view; the caller persists it. Raises UnknownReplica
        (heartbeat first) or PoolEventError (malformed event).
        """
        current = self.replica(replica_id)
        facts = PoolEventFacts.from_event(event)
        entries = self._entries[replica_id]
        old = entries.pop(facts.handle, None)
        held = current.held_bytes
        if old is not None:
            held = held.plus(old.tier, -old.stored_bytes)
            if old.session_id is not None:
                copies = self._copies[old.session_id]
                copies.pop(facts.handle, None)
                if not copies:
                    del self._copies[old.session_id]
        if facts.holds_copy:
            entry = PoolEntry(replica_id, facts.handle, facts.session_id, facts.tier, facts.stored_bytes)
            entries[facts.handle] = entry
            held = held.plus(entry.tier, entry.stored_bytes)
            if entry.session_id is not None:
                self._copies[entry.session_id][entry.handle] = entry
        self._replicas[replica_id] = replace(current, held_bytes=held)
        return self._session_after_event(replica_id, facts)

    def _session_after_event(self, replica_id: ReplicaId, facts: PoolEventFacts) -> SessionRecord | None:
        record = self._sessions.get(facts.session_id) if facts.session_id else None
        if record is None or record.replica != replica_id:
            return None
        if facts.holds_copy:
            updated = owner_copy_changed(record, facts, self._replicas[replica_id].primary_tier)
        elif any(e.replica_id == replica_id for e in self._copies.get(record.id, {}).values()):
            updated = None  # another entry of this session still lives on the owner
        else:
            updated = owner_copy_lost(record)
        if updated is not None:
            self.put_session(updated)
        return updated

    def copies_of(self, session_id: SessionId) -> list[PoolEntry]:
        """Every pool entry known for this session, on any replica (alive or dead), any tier."""
        return list(self._copies.get(session_id, {}).values())

    def entries_on(self, replica_id: ReplicaId) -> list[PoolEntry]:
        return list(self._entries.get(replica_id, {}).values())

    def stray_entries(self, replica_id: ReplicaId) -> list[PoolEntry]:
        """Session entries on an alive replica that nothing routes to: the session is gone, or it
        lives elsewhere and no migration is heading here. The shell should free them."""
        stray = []
        for entry in self.entries_on(replica_id):
            if entry.session_id is None:
                continue
            record = self._sessions.get(entry.session_id)
            if record is None or replica_id not in (record.replica, record.target_replica):
                stray.append(entry)
        return stray
