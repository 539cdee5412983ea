"""Replica: one serving replica = a PrefillActor + a DecodeActor (+ its KVPool) on one node.

Routing. Each replica is its *own* Serve deployment (``replica-0``, ``replica-1``, ...) with exactly
one Serve replica, and the ingress holds one handle per deployment. The control plane records
which replica holds a session, and the ingress sends that session's questions to that handle:
routing is explicit and deterministic (Serve's multiplexed-model routing is only best-effort
affinity, which would answer from the wrong pool or re-prefill under load).

The replica process itself does no model work; it wires the two actors and relays streams. If
an actor dies, the replica recreates it (deployments/serving/actor_restarts.py); when it was the
decode actor, the control plane sees in the next heartbeat that the sessions it expected are gone
and recovers them (read back from their durable copies, or re-prefilled). The Responses API's
conversation chains are in deployments/serving/response_chains.py (a mixin).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

import ray
from ray import serve
from ray.exceptions import GetTimeoutError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from deployments.config import AppConfig
from deployments.engine.presses.press_stats import pool_pressure_of, wants_pool_pressure
from deployments.serving.actor_restarts import ACTOR_DEATH, ROLES, ActorRestarts
from deployments.serving.decode_actor import DecodeActor
from deployments.common.plain_prompt import PlainPromptPlanner
from deployments.engine.prompt import PromptError
from deployments.serving.prefill_actor import PrefillActor
from deployments.serving.response_chains import ResponseChains
from deployments.serving.start_priority import start_below_live_work

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 600.0  # a new actor loads the model; a restarted one may start below live work (slower)


class Replica(ActorRestarts, ResponseChains):
    """Actors are named ``<app>.<replica>.<incarnation>.prefill|decode`` (for operators and tests;
    ``incarnation`` counts the replica's actor restarts, and an actor keeps the name it started with)."""

    def __init__(self, config: dict, replica_id: str):
        self.config = AppConfig.model_validate(config)
        self.replica_id = replica_id
        self.node_id = ray.get_runtime_context().get_node_id()
        self.app_name = serve.get_replica_context().app_name
        self._init_restarts()
        self.loads_in_flight = 0
        self.streams_in_flight = 0
        self._start_actors(ROLES)
        self.planner = PlainPromptPlanner(self.config.plain)

    def _start_actors(self, roles: tuple[str, ...]) -> None:
        """Start the actors of ``roles`` (``prefill``, ``decode``) and wait until they answer."""
        cfg = self.config
        options = {
            "num_cpus": cfg.replicas.num_cpus, "num_gpus": cfg.replicas.num_gpus,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(self.node_id, soft=False),
        }
        below = start_below_live_work() if self.incarnation > 0 and cfg.replicas.count > 1 else None
        if below is not None:  # a restart while other replicas serve (start_priority.py)
            options["runtime_env"] = below
        model = cfg.model.model_dump(mode="json")
        prefix = f"{self.app_name}.{self.replica_id}.{self.incarnation + 1}"
        if "prefill" in roles:
            self.prefill_actor = PrefillActor.options(**options, name=f"{prefix}.prefill").remote(
                model, cfg.replicas.torch_threads, cfg.presses.model_dump(mode="json"))
        if "decode" in roles:
            self.decode_actor = DecodeActor.options(**options, name=f"{prefix}.decode", max_concurrency=1000).remote(
                model, cfg.replicas.torch_threads, cfg.replicas.pool.model_dump(mode="json"),
                cfg.plain.model_dump(mode="json"), cfg.batching.model_dump(mode="json"),
                cfg.presses.model_dump(mode="json"), self._durable())
        try:
            ray.get([getattr(self, f"{role}_actor").ready.remote() for role in roles], timeout=_START_TIMEOUT_S)
        except GetTimeoutError:  # never a replica that waits for its actors forever
            for role in roles:
                ray.kill(getattr(self, f"{role}_actor"), no_restart=True)
            raise RuntimeError(f"{self.replica_id}: the new {' and '.join(roles)} actor did not start within "
                               f"{_START_TIMEOUT_S:.0f} s; killed (the next health check starts another)") from None
        self.incarnation += 1
        self.actor_names.update({role: f"{prefix}.{role}" for role in roles})
        log.info("%s: %s actor(s) started (incarnation %d)", self.replica_id, " and ".join(roles), self.incarnation)

    def _durable(self) -> dict | None:
        """The decode actor's durable-cache settings: one directory per application and replica."""
        durable = self.config.replicas.durable
        if not durable.enabled:
            return None
        return {"dir": self._durable_dir(self.replica_id), "budget_bytes": durable.budget_bytes}

    def _durable_dir(self, replica_id: str) -> str:
        """Where ``replica_id`` of this application keeps its durable caches on this node."""
        if replica_id not in self.config.replica_names():
            raise ValueError(f"unknown replica {replica_id!r}")  # never a path from elsewhere
        return str(self.config.replicas.durable.dir.absolute() / self.app_name / replica_id)

    async def check_health(self) -> None:
        """Serve health check: a dead actor is restarted in the background (the control plane
        recovers what was lost); the check itself returns at once, however long the restart takes."""
        if not self.restarting and await self._actor_died():
            self._restart_in_background()

    # ---- sessions ----------------------------------------------------------------------------
    async def load_session(self, session_id: str, context: Any, press: dict, pinned: bool = False,
                           owner: str | None = None, wait_for_actors: bool = False, background: bool = False) -> dict:
        """Prefill ``context`` under ``press`` and store it in this replica's pool (and, behind the
        reply, in its durable store, recording ``owner`` and ``press``).

        ``context`` may also be a conversation chain ``{"token_ids": [...], "uncompressed_from": n}``
        (a stored response, deployments/ingress/responses/): the first ``n`` tokens are prefilled
        under ``press``, the rest appended whole - the layout the chain had when it was stored.
        While an actor restarts: ActorsRestarting at once, or a wait with ``wait_for_actors`` (``admit``).
        ``background``: a recovery no client waits for - its prefill gives way to live ones."""
        await self.admit(ROLES, wait_for_actors)
        self.loads_in_flight += 1
        try:
            start = time.perf_counter()
            await self.decode_actor.ready.remote()  # a dead decode actor fails the load now, not after a wasted prefill
            if isinstance(context, dict):
                stored = await self._load_chain(session_id, context["token_ids"], context["uncompressed_from"],
                                                press, pinned, background)
            else:
                pressure = None  # cache_aware presses (moe_router) read the pool's pressure at load time
                if wants_pool_pressure(press):
                    pressure = pool_pressure_of((await self.decode_actor.stats.remote())["tiers"])
                ckv_ref = self._prefill_method(background).remote(context, press, pressure)
                stored = await self.decode_actor.store.remote(session_id, ckv_ref, pinned, owner, press)
            stored["load_s"] = time.perf_counter() - start
            stored["replica"] = self.replica_id
            return stored
        except ACTOR_DEATH:
            self._restart_in_background()  # heartbeats say "restarting" until the actors are back
            raise  # the ingress places the load on another replica (sessions/routes.py)
        finally:
            self.loads_in_flight -= 1

    async def chat(self, session_id: str | None, question: Any, sampling: dict, press: dict | None = None,
                   scope: str = "", wait_for_actors: bool = False) -> AsyncIterator[dict]:
        """Stream token dicts answering ``question`` (session cache, or a plain prompt if no session,
        reusing only prefixes stored under ``scope``: deployments.common.prefix_scope)."""
        async def open_stream() -> Any:
            if session_id is not None:
                return self.decode_actor.generate.options(num_returns="streaming").remote(session_id, question, sampling)
            return await self._plain_stream(question, sampling, press, scope)

        async for item in self._relay(open_stream, needs=_needs(session_id), wait_for_actors=wait_for_actors):
            yield item

    async def complete(self, session_id: str | None, prompt_ids: list[int], sampling: dict, press: dict | None = None,
                       scope: str = "", wait_for_actors: bool = False) -> AsyncIterator[dict]:
        """Stream token dicts continuing a raw token-id prompt (no chat template; ``/v1/completions``):
        after the session's stored context, or, without a session, as a plain prompt whose tokens but
        the last are its prefix (reused or prefilled, and compressed when long, as for chat).
        Raises PromptError for a session-less prompt of fewer than 2 tokens."""
        if session_id is None and len(prompt_ids) < 2:
            raise PromptError("a prompt without a session needs at least 2 tokens (a prefix to read and "
                              "the token to continue from)")

        async def open_stream() -> Any:
            if session_id is not None:
                return self.decode_actor.generate.options(num_returns="streaming").remote(
                    session_id, list(prompt_ids), sampling)
            plan_press = self.planner.press(press)
            found = await self.decode_actor.plain_plan_ids.remote(prompt_ids[:-1], prompt_ids[-1:], plan_press, scope)
            return await self._prefix_stream(found, sampling, plan_press, scope)

        async for item in self._relay(open_stream, needs=_needs(session_id), wait_for_actors=wait_for_actors):
            yield item

    async def _relay(self, open_stream: Any, after: Any = None, needs: tuple[str, ...] = ROLES,
                     wait_for_actors: bool = False) -> AsyncIterator[dict]:
        """Relay the decode actor's stream; a dead actor triggers a restart; the stream is cancelled
        when the caller stops reading. ``after(output_ids)``: an optional async step run once the
        stream has ended, given the token ids it produced; its result is relayed last. ``needs``:
        the actors the stream uses (``admit``: refused at once while one of them restarts, unless
        ``wait_for_actors``)."""
        await self.admit(needs, wait_for_actors)
        self.streams_in_flight += 1
        stream = None
        try:
            stream = await open_stream()
            output: list[int] = []
            async for ref in stream:
                item = await ref
                if item.get("token_id") is not None:
                    output.append(item["token_id"])
                yield item
            if after is not None:
                yield await after(output)
        except ACTOR_DEATH:
            self._restart_in_background()
            raise
        finally:
            self.streams_in_flight -= 1
            if stream is not None:
                ray.cancel(stream)

    async def prompt_logprobs(self, session_id: str | None, prompt_ids: list[int], top_k: int,
                              wait_for_actors: bool = False) -> list[dict | None]:
        """Each prompt token's log-prob (DecodeActor.prompt_logprobs): ``echo`` + ``logprobs``."""
        await self.admit(("decode",), wait_for_actors)
        return await self.decode_actor.prompt_logprobs.remote(session_id, list(prompt_ids), top_k)

    async def _plain_stream(self, messages: list[dict], sampling: dict, press: dict | None, scope: str) -> Any:
        """A plain prompt: reuse a stored compressed prefix if one matches, else prefill (and store) it."""
        plan = self.planner.plan(messages, press)
        found = await self.decode_actor.plain_plan.remote(plan.prefix, plan.suffix, plan.press, scope)
        return await self._prefix_stream(found, sampling, plan.press, scope)

    async def _prefix_stream(self, found: dict, sampling: dict, press: dict, scope: str) -> Any:
        """Generate after a planned plain prefix: from the stored entry on a hit, else prefill it."""
        generate = self.decode_actor.generate.options(num_returns="streaming")
        if found["hit_handle"] is not None:
            rest = found["prefix_ids"][found["hit_tokens"]:] + found["suffix_ids"]
            return generate.remote(None, rest, sampling, None, found["hit_handle"], prefix_hit=True)
        cache = self.prefill_actor.prefill.remote(found["prefix_ids"], press)
        handle = await self.decode_actor.store_prefix.remote(cache, scope)
        if handle is not None:
            return generate.remote(None, found["suffix_ids"], sampling, None, handle)
        return generate.remote(None, found["suffix_ids"], sampling, cache)

    async def restore_session(self, session_id: str, expect: dict, pinned: bool = False,
                              from_replica: str | None = None) -> dict:
        """Read a session's persisted cache back into the pool (DecodeActor.restore): this replica's
        own copy, or ``from_replica``'s on this node (read from its directory, then persisted here).
        Raises PersistedCacheError (reason missing / corrupt / mismatch) when it cannot be used.
        Waits for a restart of the actors first (recovery often follows an actor's death)."""
        await self.actors_ready()
        start = time.perf_counter()
        from_dir = None if from_replica in (None, self.replica_id) else self._durable_dir(from_replica)
        stored = await self.decode_actor.restore.remote(session_id, expect, pinned, from_dir)
        return {**stored, "load_s": time.perf_counter() - start, "replica": self.replica_id}

    async def free(self, session_id: str) -> int:
        return await self.decode_actor.free.remote(session_id)

    async def drop_persisted(self, session_ids: list[str]) -> int:
        """Delete persisted caches of sessions the control plane no longer knows."""
        return await self.decode_actor.drop_persisted.remote(session_ids)

    async def decode_endpoint(self) -> Any:
        """The DecodeActor handle: the transfer endpoint migrations read from and write to."""
        return self.decode_actor

    async def holds(self) -> dict[str, dict]:
        await self.admit(("decode",))  # its pool is gone: the caller (report_missing) need not wait
        return await self.decode_actor.holds.remote()

    async def admin(self, action: str, session_id: str, **kwargs: Any) -> Any:
        """Pool admin actions on one session: set_pinned, quantize, dequantize, recompress."""
        if action not in {"set_pinned", "quantize", "dequantize", "recompress"}:
            raise ValueError(f"unknown replica admin action {action!r}")
        return await getattr(self.decode_actor, action).remote(session_id, **kwargs)

    # ---- observation -------------------------------------------------------------------------
    async def heartbeat(self) -> dict:
        """What the control plane needs: node, pool usage, queue depth, held sessions, events - or,
        while the actors restart, only ``{"restarting": True}`` at once (the restart runs in the
        background: the control plane keeps hearing from this replica and places new work elsewhere)."""
        if self.restarting or self.roles_down or await self._actor_died():
            self._restart_in_background()
            return {"replica_id": self.replica_id, "node": self.node_id, "incarnation": self.incarnation,
                    "restarting": True}
        stats, holds, events, persisted = await asyncio.gather(self.decode_actor.stats.remote(),
                                                               self.decode_actor.holds.remote(),
                                                               self.decode_actor.drain_events.remote(),
                                                               self.decode_actor.persisted.remote())
        return {"replica_id": self.replica_id, "node": self.node_id, "incarnation": self.incarnation,
                "restarting": False, "queue_depth": self.loads_in_flight + self.streams_in_flight,
                "loads_in_flight": self.loads_in_flight, "streams_in_flight": self.streams_in_flight,
                "tiers": stats["tiers"], "holds": holds, "events": events, "persisted": persisted, "stats": stats}

    async def stats(self) -> dict:
        """The decode actor's pool and batch stats, plus the prefill actor's (``prefill``: {} while it restarts,
        is dead, or does not answer within 2 s - a new actor answers only once it has loaded the model)."""
        prefill = asyncio.sleep(0, {}) if "prefill" in self.roles_down else asyncio.wait_for(
            self.prefill_actor.stats.remote(), 2.0)
        stats, prefill = await asyncio.gather(self.decode_actor.stats.remote(), prefill, return_exceptions=True)
        if isinstance(stats, BaseException):
            raise stats
        prefill = {} if isinstance(prefill, BaseException) else prefill
        return {**stats, "prefill": prefill, "actor_ids": self.actor_ids(), "node": self.node_id,
                "incarnation": self.incarnation}

    def actor_ids(self) -> dict[str, dict[str, str]]:
        """Ids and names of this replica's actors (operators kill or inspect them by these)."""
        namespace = ray.get_runtime_context().namespace
        return {role: {"id": actor._actor_id.hex(), "name": self.actor_names[role], "namespace": namespace}
                for role, actor in (("prefill", self.prefill_actor), ("decode", self.decode_actor))}


def _needs(session_id: str | None) -> tuple[str, ...]:
    """The actors a stream uses: a session's question only the decode actor (its cache is there), a
    plain prompt the prefill actor too."""
    return ("decode",) if session_id is not None else ROLES
