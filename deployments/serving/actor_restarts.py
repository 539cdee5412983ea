"""ActorRestarts: a replica notices that one of its model actors died and starts a new one.

A Replica mixin (deployments/serving/replica.py). Only the dead actor is replaced: a dead prefill
actor leaves the decode actor's KV pool - every session - in place; a dead decode actor takes the
pool with it (the control plane recovers those sessions). While the new actor loads the model
(seconds of CPU on this machine, as much as a prefill), work that needs it would wait there; with
other replicas in the application it is refused at once instead (``admit``: the ingress moves it,
deployments/ingress/failover.py; work moved here already, or sent by the control plane, waits),
and the heartbeat says ``restarting`` (the control plane places new work, and reads the lost
sessions' durable copies, elsewhere). The new actor starts below live work (start_priority.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError

from deployments.common.replica_errors import ActorsRestarting
from deployments.config import AppConfig

log = logging.getLogger(__name__)
ACTOR_DEATH = (ActorDiedError, ActorUnavailableError)
ROLES = ("prefill", "decode")
_READY_TIMEOUT_S = 10.0  # below Serve's 30 s health-check timeout


class ActorRestarts:
    """Restart state of a replica's actors: ``incarnation`` (restarts so far), ``actor_names``,
    ``roles_down`` (the roles being restarted now) and ``last_restart_s`` (how long the last took)."""

    replica_id: str
    prefill_actor: Any
    decode_actor: Any
    config: AppConfig

    def _init_restarts(self) -> None:
        self.incarnation = 0
        self.actor_names: dict[str, str] = {}
        self._restart_lock = asyncio.Lock()  # the health check and failing streams may both see a death
        self._restart_task: asyncio.Task | None = None  # a restart run in the background (heartbeats, streams)
        self.roles_down: frozenset[str] = frozenset()  # from deciding to restart them to their ready()
        self.last_restart_s = 5.0  # seconds the last restart took (Retry-After of a refused request)

    def _start_actors(self, roles: tuple[str, ...]) -> None:  # pragma: no cover - the Replica defines it
        raise NotImplementedError

    async def _dead_roles(self) -> tuple[str, ...]:
        """The roles whose actor is dead. A slow ``ready`` is not death: killing a busy actor would
        throw away every session it holds (Ray reports a dead process as ActorDiedError /
        ActorUnavailableError on its own)."""
        async def dead(role: str) -> bool:
            try:
                await getattr(self, f"{role}_actor").ready.remote()
                return False
            except ACTOR_DEATH:
                return True
        try:
            found = await asyncio.wait_for(asyncio.gather(*(dead(role) for role in ROLES)), timeout=_READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("%s: actors did not answer ready() within %.0f s (busy); not restarting them",
                        self.replica_id, _READY_TIMEOUT_S)
            return ()
        return tuple(role for role, is_dead in zip(ROLES, found) if is_dead)

    async def _actor_died(self) -> bool:
        """True if an actor is dead (``_dead_roles``)."""
        return bool(await self._dead_roles())

    async def _restart_if_dead(self) -> bool:
        """Replace the actors that died; True if it did (or another caller just did). Runs as the one
        background task (``_restart_in_background``), so no caller's cancellation interrupts it."""
        seen = self.incarnation
        if not await self._dead_roles():
            return False
        async with self._restart_lock:
            dead = await self._dead_roles()  # again, on the current handles: another caller may have replaced one
            if not dead:
                return self.incarnation != seen
            log.warning("%s: the %s actor died; starting a new one%s", self.replica_id, " and ".join(dead),
                        " (its sessions will be recovered)" if "decode" in dead else " (the KV pool is kept)")
            self.roles_down, start = frozenset(dead), time.perf_counter()
            try:
                for role in dead:
                    ray.kill(getattr(self, f"{role}_actor"), no_restart=True)
                await asyncio.to_thread(self._start_actors, dead)
                self.last_restart_s = time.perf_counter() - start
            finally:
                self.roles_down = frozenset()
            return True

    @property
    def restarting(self) -> bool:
        """A background restart check or restart is running (``_restart_in_background``)."""
        return self._restart_task is not None and not self._restart_task.done()

    def _restart_in_background(self) -> asyncio.Task:
        """Run ``_restart_if_dead`` as one background task (at most one at a time, referenced so it
        is not collected mid-run) and return it; ``restarting`` is True until it ends, however it ends."""
        if not self.restarting:
            self._restart_task = asyncio.get_running_loop().create_task(self._restart_if_dead())
        return self._restart_task

    async def actors_ready(self) -> None:
        """Return once every actor answers: a dead one is restarted first (the background task; a
        cancelled caller does not cancel it). Raises ActorsRestarting if the restart failed. (Alive
        actors start no background task: the heartbeat reports any running one as ``restarting``.)"""
        if not self.restarting and not self.roles_down and not await self._dead_roles():
            return
        task = self._restart_in_background()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the restart's own error is logged by its task; the caller gets a 503
            raise ActorsRestarting(f"{self.replica_id} could not restart its model actors ({type(exc).__name__}); "
                                   "retry shortly", retry_after_s=self.last_restart_s) from exc

    async def admit(self, needs: tuple[str, ...] = ROLES, wait_for_actors: bool = False) -> None:
        """Let work that uses the actors of ``needs`` start. While one of them restarts, raise
        ActorsRestarting at once (the ingress moves the work to another replica) - unless the
        application has one replica or ``wait_for_actors`` (the work was moved here already, or the
        control plane sends it): then wait for the restart."""
        if not self.roles_down.intersection(needs):
            return
        if wait_for_actors or self.config.replicas.count == 1:
            await self.actors_ready()
            return
        down = " and ".join(sorted(self.roles_down.intersection(needs)))
        raise ActorsRestarting(f"{self.replica_id} is restarting its {down} actor; retry shortly",
                               retry_after_s=self.last_restart_s)
