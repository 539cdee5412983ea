"""The replica's ``restarting`` state (what its heartbeat reports) ends whenever its background
restart ends - also when the second look finds the actors alive after all (a transient
ActorUnavailableError, or another caller restarted them) - so a replica never stays "restarting"
and keeps sending full heartbeats. Fake actors, no Ray cluster."""

from __future__ import annotations

import asyncio

from ray.exceptions import ActorDiedError

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
    replica.replica_id, replica.node_id, replica.incarnation = "replica-0", "node", 1
    replica.loads_in_flight = replica.streams_in_flight = 0
    replica._restart_lock, replica._restart_task = asyncio.Lock(), None
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
