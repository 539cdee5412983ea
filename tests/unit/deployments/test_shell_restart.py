"""The control shell after a restart, without Ray: fake replica handles that answer like Replica
(heartbeat, holds, restore_session, load_session ...) in front of the real ControlShell,
ControlPlane, RecoveryQueue, RecoveryRunner and MigrationRunner. Sessions stored READY before the
restart are lost at the first heartbeat, read back where a durable copy is, re-prefilled where it
is corrupt, and a question waits for its session instead of a 409."""

from __future__ import annotations

import asyncio

import pytest

from control_plane import SessionContext
from control_plane.errors import SessionNotReady
from control_plane.store.memory import MemorySessionStore
from deployments.common.replica_errors import ActorsRestarting
from kvpool.durable_files import PersistedCacheError
from kvpool.press_spec import PressSpec

PRESS = PressSpec(name="knorm", compression_ratio=0.5).model_dump(mode="json")


class Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class FakeReplica:
    """Holds nothing in memory (it just restarted) but has durable copies of ``persisted``."""

    def __init__(self, name: str, persisted: set[str], corrupt: set[str] = frozenset()) -> None:
        self.name, self.persisted, self.corrupt = name, set(persisted), set(corrupt)
        self.held: dict[str, dict] = {}
        self.reads, self.prefills = [], []
        self.background_prefills: list[str] = []  # re-prefills sent as background work (they yield to live ones)
        self.peers: dict[str, FakeReplica] = {}  # replicas of its node whose files it may read
        self.restarting = False  # True: its actors restart (heartbeat says so, holds() refuses)
        self.live_work = 0  # loads its heartbeat reports in flight (background recoveries avoid it)
        for method in ("heartbeat", "holds", "restore_session", "load_session", "free", "drop_persisted"):
            setattr(self, method, Method(getattr(self, f"_{method}")))

    async def _heartbeat(self):
        if self.restarting:
            return {"replica_id": self.name, "node": "node-a", "restarting": True}
        return {"node": "node-a", "queue_depth": self.live_work, "loads_in_flight": self.live_work, "streams_in_flight": 0,
                "tiers": {"host": {"budget_bytes": 1 << 30, "held_bytes": sum(h["nbytes"] for h in self.held.values())}},
                "events": [], "holds": dict(self.held),
                "persisted": {s: {"owner": "anonymous", "press": PRESS} for s in self.persisted}}

    async def _holds(self):
        if self.restarting:
            raise ActorsRestarting(f"{self.name} is restarting its model actors")
        return dict(self.held)

    async def _restore_session(self, session_id, expect, pinned=False, from_replica=None):
        await asyncio.sleep(0.01)
        source = self.peers[from_replica] if from_replica not in (None, self.name) else self  # same node
        if session_id not in source.persisted:
            raise PersistedCacheError("missing", f"no persisted cache for {session_id}")
        if session_id in source.corrupt:
            raise PersistedCacheError("corrupt", "checksum mismatch")
        self.reads.append(session_id)
        self.persisted.add(session_id)
        self.held[session_id] = {"handle": f"h-{session_id}", "tier": "host", "nbytes": 1000}
        return {"stored_bytes": 1000, "load_s": 0.01}

    async def _load_session(self, session_id, context, press, pinned=False, owner=None, wait_for_actors=False,
                            background=False):
        if self.restarting and not wait_for_actors:
            raise ActorsRestarting(f"{self.name} is restarting its model actors")
        while self.restarting:  # the control plane's work waits for the new actors (Replica.admit)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        self.prefills.append(session_id)
        if background:
            self.background_prefills.append(session_id)
        self.held[session_id] = {"handle": f"h2-{session_id}", "tier": "host", "nbytes": 1000}
        self.persisted.add(session_id)
        self.corrupt.discard(session_id)
        return {"stored_bytes": 1000}

    async def _free(self, session_id):
        self.held.pop(session_id, None)
        self.persisted.discard(session_id)
        return 1000

    async def _drop_persisted(self, session_ids):
        self.persisted -= set(session_ids)
        return len(session_ids)


def restarted_shell(monkeypatch, sessions: int, corrupt: set[str]):
    """A store holding ``sessions`` READY sessions on replica-0 (as before a restart), and a shell
    started on it whose replica-0 holds none of them in memory but all on disk."""
    from control_plane import ControlPlane
    from deployments.config import AppConfig
    from deployments.control import shell as shell_module

    store = MemorySessionStore()
    config = AppConfig.model_validate({"replicas": {"count": 1}, "control": {"store": "memory"},
                                       "control_tick_s": 0.05, "transfer": {"backend": "fake"}})
    before = ControlPlane(config.control, store=store)
    from control_plane import ReplicaId, ReplicaStats, Tier

    before.heartbeat(ReplicaId("replica-0"), ReplicaStats(node="node-a", capacity_bytes={Tier.HOST: 1 << 30}))
    ids = []
    for i in range(sessions):
        record, _ = before.open_session(model="m", context=SessionContext(text=f"doc {i}"),
                                        press=PressSpec.model_validate(PRESS))
        before.mark_loaded(record.id, read_tokens=10, kept_tokens=5, stored_bytes=1000)
        ids.append(record.id)
    monkeypatch.setattr(shell_module, "ControlPlane", lambda cfg: ControlPlane(cfg, store=store))
    replica = FakeReplica("replica-0", set(ids), corrupt)
    shell = shell_module.ControlShell(config.model_dump(mode="json"), {"replica-0": replica})
    return shell, replica, ids


def test_after_a_restart_every_session_is_read_back_and_a_corrupt_one_rebuilt(monkeypatch):
    async def scenario():
        shell, replica, ids = restarted_shell(monkeypatch, 6, corrupt=set())
        replica.corrupt = {ids[2]}
        where = await asyncio.wait_for(asyncio.gather(*(shell.locate(s, "anonymous") for s in ids)), 20)
        assert [w["replica"] for w in where] == ["replica-0"] * 6
        assert sorted(replica.reads) == sorted(set(ids) - {ids[2]}) and replica.prefills == [ids[2]]
        counters = (await shell.cluster())["counters"]
        assert counters["recovered_by_read"] == 5 and counters["recovered_by_rebuild"] == 1, counters
        assert counters["cache_read_fallbacks_corrupt"] == 1, counters
        shell._loop_task.cancel()
    asyncio.run(scenario())


def test_rebuilds_nobody_asked_for_are_sent_as_background_prefills(monkeypatch):
    """They give way to live prefills in the prefill actor (deployments/engine/preemption.py)."""
    async def scenario():
        shell, replica, ids = restarted_shell(monkeypatch, 3, corrupt=set())
        replica.persisted.clear()  # nothing on disk: every session is re-prefilled, no request waits
        for _ in range(400):
            if len(replica.prefills) == len(ids):
                break
            await asyncio.sleep(0.05)
        assert sorted(replica.prefills) == sorted(ids) and sorted(replica.background_prefills) == sorted(ids)
        shell._loop_task.cancel()
    asyncio.run(scenario())


def test_a_request_that_cannot_wait_gets_retry_after(monkeypatch):
    async def scenario():
        shell, replica, ids = restarted_shell(monkeypatch, 2, corrupt=set())
        replica.persisted.clear()  # nothing on disk: re-prefill, slower than the request may wait

        async def slow_load(*args, **kwargs):
            await asyncio.sleep(5)
            return {"stored_bytes": 1000}

        replica.load_session = Method(slow_load)
        shell.config = shell.config.model_copy(update={"control": shell.config.control.model_copy(update={
            "recovery": shell.config.control.recovery.model_copy(update={"max_wait_s": 0.3})})})
        with pytest.raises(SessionNotReady) as error:
            await shell.locate(ids[0], "anonymous")
        assert error.value.retry_after_s is not None and error.value.retry_after_s >= 1
        shell._loop_task.cancel()
    asyncio.run(scenario())


def test_nothing_to_recover_when_the_replica_still_holds_its_sessions(monkeypatch):
    async def scenario():
        shell, replica, ids = restarted_shell(monkeypatch, 3, corrupt=set())
        replica.held = {s: {"handle": f"h-{s}", "tier": "host", "nbytes": 1000} for s in ids}  # a control-plane restart
        await shell.ready()
        await shell.locate(ids[0], "anonymous")
        assert replica.reads == [] and replica.prefills == []
        shell._loop_task.cancel()
    asyncio.run(scenario())




def test_a_copy_on_another_replica_than_recorded_is_kept_and_read_back(monkeypatch):
    """Sessions recorded on replica-1 before the restart (re-prefilled there while it persisted
    nothing) whose only durable copies are on replica-0: replica-0's heartbeat, seen before
    replica-1's pool says it holds nothing, must not delete them as stale; they are read back.
    Copies of a deleted session, and of one that replica-1's pool reports holding, are dropped."""
    from control_plane import ControlPlane, ReplicaId, ReplicaStats, Tier
    from deployments.config import AppConfig
    from deployments.control import shell as shell_module

    async def scenario():
        store = MemorySessionStore()
        config = AppConfig.model_validate({"replicas": {"count": 2}, "control": {"store": "memory"},
                                           "control_tick_s": 0.05, "transfer": {"backend": "fake"}})
        before = ControlPlane(config.control, store=store)
        before.heartbeat(ReplicaId("replica-1"), ReplicaStats(node="node-a", capacity_bytes={Tier.HOST: 1 << 30}))
        ids = []
        for i in range(4):
            record, _ = before.open_session(model="m", context=SessionContext(text=f"doc {i}"),
                                            press=PressSpec.model_validate(PRESS))
            before.mark_loaded(record.id, read_tokens=10, kept_tokens=5, stored_bytes=1000)
            ids.append(record.id)
        monkeypatch.setattr(shell_module, "ControlPlane", lambda cfg: ControlPlane(cfg, store=store))
        on_disk = FakeReplica("replica-0", set(ids[:3]) | {"deleted-session"})
        recorded = FakeReplica("replica-1", set())
        recorded.held = {ids[2]: {"handle": "h-kept", "tier": "host", "nbytes": 1000}}  # its pool still holds ids[2]
        shell = shell_module.ControlShell(config.model_dump(mode="json"), {"replica-0": on_disk, "replica-1": recorded})
        where = await asyncio.wait_for(asyncio.gather(*(shell.locate(s, "anonymous") for s in ids[:2])), 20)
        assert [w["replica"] for w in where] == ["replica-0", "replica-0"]
        assert sorted(on_disk.reads) == sorted(ids[:2])  # read back, not re-prefilled
        assert not set(ids[:2]) & set(on_disk.prefills + recorded.prefills)
        await shell.ready()
        assert ids[2] not in on_disk.persisted and "deleted-session" not in on_disk.persisted
        shell._loop_task.cancel()
    asyncio.run(scenario())


def two_replica_shell(monkeypatch, first: FakeReplica, second: FakeReplica):
    """A control shell over ``first`` and ``second`` (2 replicas, in-memory store, fast ticks)."""
    from control_plane import ControlPlane
    from deployments.config import AppConfig
    from deployments.control import shell as shell_module

    store = MemorySessionStore()
    config = AppConfig.model_validate({"replicas": {"count": 2}, "control": {"store": "memory"},
                                       "control_tick_s": 0.05, "transfer": {"backend": "fake"}})
    monkeypatch.setattr(shell_module, "ControlPlane", lambda cfg: ControlPlane(cfg, store=store))
    return shell_module.ControlShell(config.model_dump(mode="json"), {first.name: first, second.name: second})


async def loaded_on(shell, replica: FakeReplica, sessions: int, persisted: bool) -> list[str]:
    """``sessions`` READY sessions held by ``replica``'s pool (and on its disk if ``persisted``), listed
    by a heartbeat; returns their ids."""
    from control_plane import ReplicaId

    ids = []
    for i in range(sessions):
        record, _ = shell.cp.open_session(model="m", context=SessionContext(text=f"doc {i}"),
                                          press=PressSpec.model_validate(PRESS), replica=ReplicaId(replica.name))
        shell.cp.mark_loaded(record.id, read_tokens=10, kept_tokens=5, stored_bytes=1000)
        replica.held[record.id] = {"handle": f"h-{record.id}", "tier": "host", "nbytes": 1000}
        if persisted:
            replica.persisted.add(record.id)
        ids.append(record.id)
    await shell.heartbeat_all()  # the control plane lists the replica's durable copies
    return ids


async def sigkill(shell, replica: FakeReplica, ids: list[str]) -> None:
    """``replica``'s decode actor dies (its pool is gone, its files stay; it restarts) and requests
    for ``ids`` report the lost caches."""
    replica.restarting, replica.held = True, {}
    for session_id in ids:
        await shell.report_missing(session_id, "anonymous", replica.name)


def test_sessions_of_a_restarting_replica_are_read_by_its_node_neighbour(monkeypatch):
    """replica-0's decode actor died and its actors restart (seconds of model loading): a request
    finds its session gone (``report_missing``: holds() refuses while restarting, so the control
    plane marks it restarting at once) and replica-1, on the same node, reads the durable copy from
    replica-0's files instead of waiting for it or re-prefilling."""
    async def scenario():
        holder, neighbour = FakeReplica("replica-0", set()), FakeReplica("replica-1", set())
        neighbour.peers = {"replica-0": holder}
        shell = two_replica_shell(monkeypatch, holder, neighbour)
        await shell.ready()
        ids = await loaded_on(shell, holder, 3, persisted=True)
        await sigkill(shell, holder, ids)
        where = await asyncio.wait_for(asyncio.gather(*(shell.locate(s, "anonymous") for s in ids)), 20)
        assert [w["replica"] for w in where] == ["replica-1"] * 3
        assert sorted(neighbour.reads) == sorted(ids) and not holder.reads
        assert not neighbour.prefills and not holder.prefills  # read, never re-prefilled
        assert set(ids) <= neighbour.persisted  # durable again on the replica that holds them now
        shell._loop_task.cancel()
    asyncio.run(scenario())


def test_a_background_rebuild_on_a_restarting_replica_waits_for_it_and_is_not_failed(monkeypatch):
    """Sessions without durable copies lost with replica-0's decode actor, the other replica busy
    with live work: the background re-prefill can only go to replica-0, which is restarting. The
    control plane's load waits for the new actors (``wait_for_actors``) instead of being refused
    until the job gives up and the session is FAILED (lost)."""
    from control_plane import SessionState

    async def scenario():
        holder, busy = FakeReplica("replica-0", set()), FakeReplica("replica-1", set())
        busy.live_work = 3
        shell = two_replica_shell(monkeypatch, holder, busy)
        await shell.ready()
        ids = await loaded_on(shell, holder, 2, persisted=False)
        await sigkill(shell, holder, ids)  # no durable copies: re-prefill is the only way
        await asyncio.sleep(1.0)  # many ticks: the rebuilds started and wait for replica-0's actors
        states = {shell.cp.view.session(s).state for s in ids}
        assert states == {SessionState.REBUILDING}, states
        holder.restarting = False
        where = await asyncio.wait_for(asyncio.gather(*(shell.locate(s, "anonymous") for s in ids)), 20)
        assert [w["replica"] for w in where] == ["replica-0"] * 2 and sorted(holder.prefills) == sorted(ids)
        shell._loop_task.cancel()
    asyncio.run(scenario())
