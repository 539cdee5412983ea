"""deployments/ingress/failover.py: a request starts on one replica and moves at most once, only for
the errors that mean the replica's model actors (or the cache) are gone, and leaves no stream open.
The e2e test (tests/e2e/test_restart_recovery.py) sends real requests of every API at a SIGKILLed replica."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import RayActorError

from deployments.common.replica_errors import ActorsRestarting, MissingCache
from deployments.ingress.failover import ACTORS_GONE, CACHE_GONE, first_items, start_with_failover


def run(coro):
    return asyncio.run(coro)


class Starts:
    """``start`` fails with the listed errors, one per call, then answers with the replica's name."""

    def __init__(self, *errors: BaseException):
        self.errors, self.calls, self.moves, self.moved = list(errors), [], [], []

    async def start(self, name: str, moved: bool) -> str:
        self.calls.append(name)
        self.moved.append(moved)
        if self.errors:
            raise self.errors.pop(0)
        return f"answer from {name}"

    async def move(self, name: str, exc: BaseException) -> str:
        self.moves.append((name, type(exc).__name__))
        return "replica-1"


def test_a_start_that_succeeds_is_not_moved():
    s = Starts()
    assert run(start_with_failover("replica-0", s.start, s.move)) == ("replica-0", "answer from replica-0")
    assert s.moves == []


def test_a_dead_replica_is_left_once_for_the_one_move_names():
    s = Starts(RayActorError())
    assert run(start_with_failover("replica-0", s.start, s.move)) == ("replica-1", "answer from replica-1")
    assert s.calls == ["replica-0", "replica-1"] and s.moves == [("replica-0", "RayActorError")]
    assert s.moved == [False, True]  # the moved start waits for a restarting replica's actors


def test_a_replica_restarting_its_actors_is_left_like_a_dead_one():
    """ActorsRestarting (refused at once while its actors restart) moves any request, as a dead actor
    does; the second start is told it was moved (``wait_for_actors``), so it is not refused again."""
    for lost in (ACTORS_GONE, CACHE_GONE):
        s = Starts(ActorsRestarting("replica-0 is restarting its decode actor; retry shortly"))
        assert run(start_with_failover("replica-0", s.start, s.move, lost)) == ("replica-1", "answer from replica-1")
        assert s.moves == [("replica-0", "ActorsRestarting")] and s.moved == [False, True]


def test_a_second_failure_is_the_requests_error():
    s = Starts(RayActorError(), RayActorError())
    with pytest.raises(RayActorError):
        run(start_with_failover("replica-0", s.start, s.move))
    assert len(s.calls) == 2 and len(s.moves) == 1


def test_a_lost_cache_moves_only_a_request_that_continues_a_cache():
    s = Starts(MissingCache("gone"))
    assert run(start_with_failover("replica-0", s.start, s.move, CACHE_GONE))[0] == "replica-1"
    s = Starts(MissingCache("gone"))
    with pytest.raises(MissingCache):
        run(start_with_failover("replica-0", s.start, s.move, ACTORS_GONE))
    assert s.moves == []


def test_other_errors_are_not_retried():
    s = Starts(ValueError("bad request"))
    with pytest.raises(ValueError):
        run(start_with_failover("replica-0", s.start, s.move, CACHE_GONE))
    assert s.calls == ["replica-0"]


def test_nowhere_to_move_raises_the_moves_error():
    async def nowhere(name: str, exc: BaseException) -> str:
        raise exc

    s = Starts(RayActorError())
    with pytest.raises(RayActorError):
        run(start_with_failover("replica-0", s.start, nowhere))
    assert s.calls == ["replica-0"]


class Stream:
    def __init__(self, item: dict | BaseException):
        self.item, self.cancelled = item, False

    def cancel(self) -> None:
        self.cancelled = True


async def take(stream: Stream) -> dict:
    if isinstance(stream.item, BaseException):
        raise stream.item
    return stream.item


def test_first_items_takes_one_item_per_stream_in_order():
    streams = [Stream({"text": "a"}), Stream({"text": "b"})]
    assert run(first_items(streams, take)) == [{"text": "a"}, {"text": "b"}]
    assert not any(s.cancelled for s in streams)


def test_first_items_cancels_every_stream_when_one_fails():
    streams = [Stream({"text": "a"}), Stream(RayActorError()), Stream({"text": "c"})]
    with pytest.raises(RayActorError):
        run(first_items(streams, take))
    assert all(s.cancelled for s in streams)


class Refusing(Stream):
    """A stream whose request was refused: ``cancel()`` raises the refusal again (Serve's
    BackPressureError does), which must not replace the route's error."""

    def cancel(self) -> None:
        self.cancelled = True
        raise RuntimeError("Request dropped due to backpressure")


def test_a_stream_that_raises_on_cancel_does_not_replace_the_error():
    streams = [Refusing(ValueError("over capacity")), Stream({"text": "b"})]
    with pytest.raises(ValueError, match="over capacity"):
        run(first_items(streams, take))
    assert all(s.cancelled for s in streams)
