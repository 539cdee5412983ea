"""SessionAffinityStrategy: LiteLLM's custom routing strategy for kvfleet deployments.

LiteLLM 1.110's supported hook for custom routing is ``Router.register_plugin(strategy)`` with a
``CustomRoutingStrategyBase`` (``litellm/router_api.py``); from then on the strategy picks every
deployment, and it asks the router for the candidates with ``router.select(model, kwargs,
kind="healthy")`` (deployments not in cooldown), as LiteLLM's own LAR-1 strategy does.

Decisions:

- ``previous_response_id`` (Responses API): the deployment that answered that response (LiteLLM
  encodes it in the response ids it returns; response_affinity.py) - its conversation cache
  lives there; NoDeploymentError (503) when it is down;
- no ``session_id`` (or a model group not served by kvfleet): round-robin over the healthy
  deployments, skipping one this request already failed on;
- ``session_id``: its home deployment (directory, else asked of each deployment), when LiteLLM
  has it healthy and its ``/health`` answers. The outgoing body gets the home's own id for it;
- home down (cooldown, failed /health, or this request already failed there and a fresh probe
  fails): fail over to a healthy deployment that still holds a copy, else rebuild the session on
  the one holding the fewest sessions from the context the directory stored. A session that
  cannot be rebuilt is a SessionLostError (503) naming what to do; never a hang (every call has a
  timeout).

A retried attempt (LiteLLM calls the strategy again for the same request) is recognised by the
deployments this strategy already picked for it, recorded in the request metadata.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from litellm.types.router import CustomRoutingStrategyBase

from deployments.litellm_router.balancer import RoundRobin, deployment_id, fewest_sessions
from deployments.litellm_router.config import KvfleetRouterConfig
from deployments.litellm_router.directory import SessionRoute
from deployments.litellm_router.endpoint import KvfleetEndpoint
from deployments.litellm_router.errors import NoDeploymentError, SessionLostError, UnknownSessionError
from deployments.litellm_router.response_affinity import response_home
from deployments.litellm_router.session_id import find_session_id, set_session_id
from deployments.litellm_router.sessions import SessionService

log = logging.getLogger(__name__)
_PICKED = "kvfleet_picked"  # metadata key: deployment ids this strategy picked for the request


class SessionAffinityStrategy(CustomRoutingStrategyBase):
    def __init__(self, router: Any, sessions: SessionService, config: KvfleetRouterConfig):
        self.router = router
        self.sessions = sessions
        self.config = config
        self._rr = RoundRobin()
        self.failovers = 0

    async def async_get_available_deployment(self, model: str, messages: list[dict[str, str]] | None = None,
                                             input: str | list[object] | None = None,
                                             specific_deployment: bool | None = False,
                                             request_kwargs: dict[str, Any] | None = None) -> Mapping[str, Any]:
        """The deployment (a model_list entry) to call. Raises UnknownSessionError (404),
        SessionLostError or NoDeploymentError (503)."""
        request = request_kwargs if request_kwargs is not None else {}
        healthy = await self.router.select(model, request, kind="healthy", specific_deployment=specific_deployment,
                                           messages=messages)
        if isinstance(healthy, Mapping):  # the request named one deployment
            return healthy
        candidates = list(healthy)
        if not candidates:
            raise NoDeploymentError(f"no deployment of {model!r} is available (all in cooldown); retry later")
        picked = _picked(request)
        session_id = find_session_id(request)
        chain = response_home(request) if self.config.serves(model) else None
        if chain is not None:
            choice = self._chain_pick(model, chain, candidates)
        elif session_id is None or not self.config.serves(model):
            fresh = [d for d in candidates if deployment_id(d) not in picked] or candidates
            choice = self._rr.pick(model, fresh)
        else:
            choice = await self._session_pick(model, session_id, candidates, picked, request)
        picked.append(deployment_id(choice))
        return choice

    @staticmethod
    def _chain_pick(model: str, chain: tuple[str, str], candidates: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        """The deployment that answered ``previous_response_id``: its conversation cache lives there."""
        previous, home = chain
        for deployment in candidates:
            if deployment_id(deployment) == home:
                return deployment
        raise NoDeploymentError(f"previous_response_id {previous!r} was answered by deployment {home!r} of {model!r}, "
                                "which is not available now; its conversation state lives there - retry when it "
                                "is back, or start a new conversation")

    def get_available_deployment(self, model: str, messages: list[dict[str, str]] | None = None,
                                 input: str | list[object] | None = None, specific_deployment: bool | None = False,
                                 request_kwargs: dict[str, Any] | None = None) -> Mapping[str, Any]:
        raise NotImplementedError("kvfleet session routing is asynchronous: call router.acompletion (the LiteLLM "
                                  "proxy does) or KvfleetRouterClient.completion, not router.completion")

    async def _session_pick(self, model: str, session_id: str, candidates: list[Mapping[str, Any]],
                            picked: list[str], request: dict[str, Any]) -> Mapping[str, Any]:
        group = self._group(model)
        route = await self.sessions.find(session_id, group)
        if route is None:
            raise UnknownSessionError(
                f"session {session_id!r} is unknown to the router and to every deployment of {model!r}; "
                "load the context first with POST /v1/sessions on the router (or KvfleetRouterClient.create_session)")
        by_id = {deployment_id(d): d for d in candidates}
        retry = bool(picked) and picked[-1] == route.home
        home = by_id.get(route.home)
        if home is not None:
            endpoint = KvfleetEndpoint.from_deployment(home)
            if await self.sessions.health.is_healthy(endpoint, fresh=retry):
                if retry:  # the home answered an error before: make sure it still holds the session
                    route = await self.sessions.move(route, endpoint, verify_copy=True)
                set_session_id(request, route.copies[route.home])
                return home
            log.warning("session %s: home deployment %s is down", session_id, route.home)
        target = await self._failover_target(model, route, candidates)
        moved = await self.sessions.move(route, KvfleetEndpoint.from_deployment(target), verify_copy=True)
        self.failovers += 1
        set_session_id(request, moved.copies[moved.home])
        return target

    async def _failover_target(self, model: str, route: SessionRoute,
                               candidates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        others = [d for d in candidates if deployment_id(d) != route.home]
        endpoints = [KvfleetEndpoint.from_deployment(d) for d in others]
        up = await asyncio.gather(*(self.sessions.health.is_healthy(e, fresh=True) for e in endpoints))
        alive = [d for d, ok in zip(others, up) if ok]
        if not alive:
            raise SessionLostError(f"session {route.session_id!r}: its deployment {route.home!r} is down and no other "
                                   f"deployment of {model!r} is healthy; retry when one is back")
        with_copy = [d for d in alive if deployment_id(d) in route.copies]
        if with_copy:
            return with_copy[0]
        return fewest_sessions(alive, self.sessions.directory.homes(route.model_group), self._rr, model)

    def _group(self, model: str) -> list[Mapping[str, Any]]:
        """Every deployment of the model group (healthy or not), from the router's registry."""
        return list(self.router.registry().deployments(model, source="all"))


def _picked(request: dict[str, Any]) -> list[str]:
    metadata = request.get("metadata")
    if not isinstance(metadata, dict):
        metadata = request["metadata"] = {}
    picked = metadata.get(_PICKED)
    if not isinstance(picked, list):
        picked = metadata[_PICKED] = []
    return picked
