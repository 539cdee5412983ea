"""Start a request's work on a replica, and move it once if that replica's model actors are gone.

A replica's prefill and decode actors can die (SIGKILL, OOM) before a heartbeat tells the control
plane. A request sent there fails before its first token with ``RayActorError`` (the actor is
dead), ``ActorsRestarting`` (the replica is restarting them and refuses work at once) or
``MissingCache`` (the decode actor restarted empty: the cache a turn continues is gone).
Nothing was streamed to the client yet, so the request can start again elsewhere: a plain prompt
on another replica (the router forgets the dead replica's prefixes), a session's question where
the control plane recovers the session, a first load or a stored response where the control
plane places it again. The route supplies the ``move`` (the decision); this module only runs the
attempt twice at most. Errors after the first item are the route's (in-band on a stream).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, TypeVar

from ray.exceptions import RayActorError

from deployments.common.replica_errors import ActorsRestarting, MissingCache

T = TypeVar("T")

ACTORS_GONE: tuple[type[BaseException], ...] = (RayActorError, ActorsRestarting)  # any request: the model actors died
CACHE_GONE: tuple[type[BaseException], ...] = (*ACTORS_GONE, MissingCache)  # a request that continues a cache


async def start_with_failover(name: str, start: Callable[[str, bool], Awaitable[T]],
                              move: Callable[[str, BaseException], Awaitable[str]],
                              lost: tuple[type[BaseException], ...] = ACTORS_GONE) -> tuple[str, T]:
    """``(replica, await start(replica, moved))``: ``start(name, False)``; if it raises one of
    ``lost``, ``name = await move(name, exc)`` (which raises when there is nowhere to go: the route's
    error, e.g. 503) and ``start(name, True)`` there. ``moved`` is the replica methods'
    ``wait_for_actors``: a request moved once waits for a restarting replica's actors instead of
    being refused again. ``start`` must leave nothing open when it raises (``first_items`` cancels
    its streams)."""
    try:
        return name, await start(name, False)
    except lost as exc:
        name = await move(name, exc)
    return name, await start(name, True)


async def first_items(streams: Iterable[Any], take_first: Callable[[Any], Awaitable[dict]]) -> list[dict]:
    """The first item of every stream (a replica's DeploymentResponseGenerators); on any error
    every stream is cancelled (``cancel_all``) and the error raised: nothing keeps generating for a
    request that moved or failed."""
    streams = list(streams)
    try:
        return [await take_first(s) for s in streams]
    except BaseException:
        cancel_all(streams)
        raise


def cancel_all(streams: Iterable[Any]) -> None:
    """Cancel every stream. A stream whose request itself failed may raise its error again from
    ``cancel()`` (Serve's BackPressureError does): that error is the request's, already being
    reported, so it is not raised a second time in place of the route's own (a 429 turned 503)."""
    for stream in streams:
        try:
            stream.cancel()
        except Exception:  # noqa: BLE001 - see the docstring
            pass
