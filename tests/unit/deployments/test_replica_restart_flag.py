"""The replica's ``restarting`` state (what its heartbeat reports) ends whenever its background
restart ends - also when the second look finds the actors alive after all (a transient
ActorUnavailableError, or another caller restarted them) - so a replica never stays "restarting"
and keeps sending full heartbeats. While the actors restart, requests are refused at once when
another replica may take them. Fake actors, no Ray cluster."""

from __future__ import annotations

import asyncio

import threading

import pytest
from ray.exceptions import ActorDiedError

from deployments.common.replica_errors import ActorsRestarting
from deployments.config import AppConfig
from deployments.serving import actor_restarts
from deployments.serving.replica import Replica


class _Method:
    def __init__(self, outcomes: list):
        self.outcomes = outcomes

    def remote(self, *args, **kwargs):
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]

        async def answer():
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return answer()


class _Actor:
    def __init__(self, ready: list):
        self.ready = _Method(ready)
        self.stats = _Method([{"tiers": {}}])
        self.holds = _Method([{}])
        self.drain_events = _Method([[]])
        self.persisted = _Method([{}])


def _replica(decode_ready: list) -> Replica:
    replica = Replica.__new__(Replica)  # no actors started: the fakes stand in
    replica._init_restarts()
    replica.replica_id, replica.node_id, replica.incarnation = "replica-0", "node", 1
    replica.loads_in_flight = replica.streams_in_flight = 0
    replica.prefill_actor, replica.decode_actor = _Actor([True]), _Actor(decode_ready)
    return replica


def test_restarting_ends_when_the_second_look_finds_the_actors_alive():
    async def scenario():
        replica = _replica([ActorDiedError(), True])  # dead once, then answering (transient)
        beat = await replica.heartbeat()
        assert beat["restarting"] is True and replica.restarting
        await replica._restart_task
        assert not replica.restarting and replica.incarnation == 1  # nothing was restarted
        beat = await replica.heartbeat()
        assert beat["restarting"] is False and "holds" in beat

    asyncio.run(scenario())


def test_one_background_restart_at_a_time():
    async def scenario():
        replica = _replica([ActorDiedError(), True])
        await replica.heartbeat()
        task = replica._restart_task
        await replica.heartbeat()  # still restarting: the same task, no second one
        assert replica._restart_task is task
        await task

    asyncio.run(scenario())


@pytest.mark.parametrize("replicas", [2, 1])
def test_work_is_refused_at_once_while_the_decode_actor_restarts_if_another_replica_may_take_it(monkeypatch, replicas):
    """Between the decision to restart the dead decode actor and the new one's ready(), a load, a
    stream and holds() raise ActorsRestarting at once (503 + Retry-After, or moved by the ingress) -
    with one replica they wait for the new actor instead. The live prefill actor is kept."""
    killed = []
    monkeypatch.setattr(actor_restarts.ray, "kill", lambda actor, no_restart: killed.append(actor))
    loading, release = threading.Event(), threading.Event()

    def start_actors(roles):  # the new actor loads the model (seconds); held here until released
        loading.set()
        release.wait(10)
        assert roles == ("decode",)
        replica.decode_actor = _Actor([True])
        replica.incarnation += 1

    async def scenario():
        replica.config = AppConfig.model_validate({"replicas": {"count": replicas}})
        replica._start_actors = start_actors
        prefill = replica.prefill_actor
        await replica.heartbeat()  # sees the death, restarts in the background
        await asyncio.to_thread(loading.wait, 10)
        assert replica.roles_down == {"decode"} and replica.restarting
        if replicas > 1:
            with pytest.raises(ActorsRestarting) as refused:
                await replica.load_session("s", "a document", {"name": "no_press"})
            assert refused.value.retry_after_s > 0 and replica.loads_in_flight == 0
            with pytest.raises(ActorsRestarting):
                await replica.chat("s", [{"role": "user", "content": "hi"}], {}).__anext__()
            assert replica.streams_in_flight == 0
            with pytest.raises(ActorsRestarting):
                await replica.holds()
        else:
            waiting = asyncio.ensure_future(replica.admit())  # one replica: nothing to move to, the work waits
            await asyncio.sleep(0.05)
            assert not waiting.done()
        moved = asyncio.ensure_future(replica.admit(wait_for_actors=True))  # a request moved here waits too
        await asyncio.sleep(0.05)
        assert not moved.done()
        release.set()
        await replica._restart_task
        await asyncio.wait_for(moved, 5)
        if replicas == 1:
            await asyncio.wait_for(waiting, 5)
        assert not replica.roles_down and replica.incarnation == 2
        assert replica.prefill_actor is prefill and killed == [replica_decode_before]
        await replica.admit()

    replica = _replica([ActorDiedError()])
    replica_decode_before = replica.decode_actor
    asyncio.run(scenario())


def test_a_dead_prefill_actor_alone_is_replaced_and_session_work_goes_on(monkeypatch):
    """The prefill actor died: only it is replaced (the decode actor's KV pool, every session, is
    kept); meanwhile loads are refused but a session's stream and holds() are not."""
    monkeypatch.setattr(actor_restarts.ray, "kill", lambda actor, no_restart: None)
    loading, release = threading.Event(), threading.Event()
    started = []

    def start_actors(roles):
        started.append(roles)
        loading.set()
        release.wait(10)
        replica.prefill_actor = _Actor([True])
        replica.incarnation += 1

    async def scenario():
        replica.config = AppConfig.model_validate({"replicas": {"count": 2}})
        replica._start_actors = start_actors
        decode = replica.decode_actor
        await replica.heartbeat()
        await asyncio.to_thread(loading.wait, 10)
        assert replica.roles_down == {"prefill"}
        with pytest.raises(ActorsRestarting):
            await replica.load_session("s", "a document", {"name": "no_press"})
        await replica.admit(("decode",))  # a session's question or holds(): not refused
        assert await replica.holds() == {}
        release.set()
        await replica._restart_task
        assert started == [("prefill",)] and replica.decode_actor is decode

    replica = _replica([True])
    replica.prefill_actor = _Actor([ActorDiedError()])
    asyncio.run(scenario())


def test_waiting_for_alive_actors_starts_no_restart_check():
    """A read-back waits for the actors (``actors_ready``); with both alive it must not start the
    background check, which the heartbeat would report as ``restarting`` (new loads would avoid
    the replica that is reading sessions back)."""
    async def scenario():
        replica = _replica([True])
        await replica.actors_ready()
        assert replica._restart_task is None and not replica.restarting
        beat = await replica.heartbeat()
        assert beat["restarting"] is False

    asyncio.run(scenario())


def test_a_load_on_a_dead_decode_actor_fails_before_it_prefills(monkeypatch):
    """Before the heartbeat notices a SIGKILLed decode actor, a load placed here fails at once (and
    starts the restart) instead of first prefilling a cache nobody can store: the ingress moves it
    to another replica, where the load then costs one prefill, not two."""
    monkeypatch.setattr(actor_restarts.ray, "kill", lambda actor, no_restart: None)
    prefilled = []

    class _Prefill(_Actor):
        def __init__(self):
            super().__init__([True])
            self.prefill = _Method([None])
            self.prefill.remote = lambda *args, **kwargs: prefilled.append(args)

    async def scenario():
        replica = _replica([ActorDiedError()])
        replica.config = AppConfig.model_validate({"replicas": {"count": 2}})
        replica._start_actors = lambda roles: None
        replica.prefill_actor = _Prefill()
        with pytest.raises(ActorDiedError):
            await replica.load_session("s", "a document", {"name": "no_press"})
        assert prefilled == [] and replica.loads_in_flight == 0 and replica.restarting
        await replica._restart_task

    asyncio.run(scenario())


@pytest.mark.parametrize("restarting", [True, False])
def test_stats_never_wait_for_a_prefill_actor_that_is_starting(restarting):
    """Regression (full suite, tests/integration/test_fleet_control.py): while a new prefill actor loads
    its model it answers nothing, and ``/admin/stats`` lost the replica's entry (its 30 s timeout) when
    ``Replica.stats`` waited for it. Now: {} at once while it restarts, or after 2 s if it does not answer."""
    async def hang():
        await asyncio.sleep(60)

    async def scenario():
        replica = _replica([True])
        replica.actor_ids = lambda: {"prefill": {}, "decode": {}}
        replica.prefill_actor.stats.remote = lambda: hang()
        replica.roles_down = frozenset({"prefill"}) if restarting else frozenset()
        stats = await asyncio.wait_for(replica.stats(), 5)
        assert stats["prefill"] == {} and stats["tiers"] == {} and "actor_ids" in stats

    asyncio.run(scenario())
