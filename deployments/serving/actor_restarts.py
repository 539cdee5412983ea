"""ActorRestarts: a replica notices that one of its model actors died and starts a new one.

A Replica mixin (deployments/serving/replica.py). Only the dead actor is replaced: a dead prefill
actor leaves the decode actor's KV pool - every session - in place; a dead decode actor takes the
pool with it (the control plane recovers those sessions). While the new actor loads the model
(seconds of CPU on this machine, as much as a prefill), work that needs it would wait there; with
other replicas in the application it is refused at once instead (``refuse_while_restarting``: the
ingress moves it, deployments/ingress/failover.py) and the heartbeat says ``restarting`` (the
control plane places new work, and reads the lost sessions' durable copies, elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError

from deployments.common.replica_errors import ActorsRestarting

log = logging.getLogger(__name__)
ACTOR_DEATH = (ActorDiedError, ActorUnavailableError)
ROLES = ("prefill", "decode")
_READY_TIMEOUT_S = 10.0  # below Serve's 30 s health-check timeout


class ActorRestarts:
    replica_id: str
    prefill_actor: Any
    decode_actor: Any
    config: Any

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
        return bool(await self._dead_roles())

    async def _restart_if_dead(self) -> bool:
        """Replace the actors that died; True if it did (or another caller just did)."""
        seen = self.incarnation
        dead = await self._dead_roles()
        if not dead:
            return False
        async with self._restart_lock:
            if self.incarnation != seen:
                return True  # another caller restarted them while we waited: never restart twice
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

    def _restart_in_background(self) -> None:
        """Run ``_restart_if_dead`` as one background task (at most one at a time, referenced so it
        is not collected mid-run); ``restarting`` is True until it ends, however it ends."""
        if not self.restarting:
            self._restart_task = asyncio.get_running_loop().create_task(self._restart_if_dead())

    def refuse_while_restarting(self, needs: tuple[str, ...] = ROLES) -> None:
        """Raise ActorsRestarting while an actor of ``needs`` restarts, if another replica may take
        the work (``replicas.count`` > 1); with a single replica the work waits for it instead."""
        down = self.roles_down.intersection(needs)
        if down and self.config.replicas.count > 1:
            raise ActorsRestarting(f"{self.replica_id} is restarting its {' and '.join(sorted(down))} actor; "
                                   "retry shortly", retry_after_s=self.last_restart_s)
