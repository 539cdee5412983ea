"""SessionService: create, find, move (rebuild) and delete kvfleet sessions across deployments.

It acts; ``SessionAffinityStrategy`` decides. Every session it creates is recorded in the
``SessionDirectory`` with its context and press, so that when the deployment holding it is down
the session can be rebuilt on another deployment through that deployment's sessions API (one new
prefill there); the client keeps using the id it was given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from deployments.litellm_router.balancer import RoundRobin, fewest_sessions
from deployments.litellm_router.config import KvfleetRouterConfig
from deployments.litellm_router.directory import SessionDirectory, SessionRoute
from deployments.litellm_router.endpoint import KvfleetEndpoint
from deployments.litellm_router.errors import (
    InvalidListingError, NoDeploymentError, SessionLostError, UnknownSessionError,
)
from deployments.litellm_router.health import HealthCache

log = logging.getLogger(__name__)


class SessionService:
    def __init__(self, directory: SessionDirectory, config: KvfleetRouterConfig):
        self.directory = directory
        self.config = config
        self.health = HealthCache(config.health_ttl_s, config.health_timeout_s)
        self.rebuilds = 0  # counted: a rebuild is an intended fallback, never silent
        self._rr = RoundRobin()
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    # ---- create / read / delete -------------------------------------------------------------
    async def create(self, model_group: str, deployments: Sequence[Mapping[str, Any]],
                     context: str | list[dict[str, Any]], press: dict[str, Any] | None = None,
                     ttl_s: float | None = None) -> dict[str, Any]:
        """Load ``context`` on the healthy deployment holding the fewest sessions; returns kvfleet's
        session view plus ``router`` (home deployment, copies). Raises NoDeploymentError."""
        endpoints = await self._healthy_endpoints(deployments)
        if not endpoints:
            raise NoDeploymentError(f"no healthy kvfleet deployment serves {model_group!r}; "
                                    "check each deployment's /health and the model_list api_base")
        by_id = {e.deployment_id: e for e in endpoints}
        chosen = fewest_sessions([{"model_info": {"id": i}} for i in by_id], self.directory.homes(model_group),
                                 self._rr, model_group)
        endpoint = by_id[str(chosen["model_info"]["id"])]
        view = await endpoint.create_session(context, press, ttl_s, self.config.session_timeout_s)
        route = SessionRoute(session_id=view["id"], model_group=model_group, home=endpoint.deployment_id,
                             copies={endpoint.deployment_id: view["id"]}, context=context,
                             press=view.get("press") or press, ttl_s=ttl_s)
        self.directory.put(route)
        log.info("session %s created on %s", route.session_id, endpoint.deployment_id)
        return self._view(route, view, endpoint)

    async def describe(self, session_id: str, deployments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The home deployment's view of the session (with ``router``). Raises UnknownSessionError."""
        route = await self.find(session_id, deployments)
        if route is None:
            raise UnknownSessionError(f"session {session_id!r} is unknown: no record and no deployment holds it")
        endpoint = _endpoint_of(route.home, deployments)
        view = None if endpoint is None else await endpoint.get_session(route.home_session_id(),
                                                                         self.config.lookup_timeout_s)
        return self._view(route, view or {"id": session_id, "state": "unavailable"}, endpoint)

    async def update(self, session_id: str, deployments: Sequence[Mapping[str, Any]],
                     changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH the session on its home deployment (TTL / expire_time / pinned); the new TTL is also
        recorded for rebuilds. Raises UnknownSessionError, DeploymentRequestError (the deployment's
        status: 400 bad change, 404, 409)."""
        route = await self.find(session_id, deployments)
        endpoint = None if route is None else _endpoint_of(route.home, deployments)
        if route is None or endpoint is None:
            raise UnknownSessionError(f"session {session_id!r} is unknown: no record and no deployment holds it")
        view = await endpoint.update_session(route.home_session_id(), changes, self.config.lookup_timeout_s)
        if "ttl_s" in view:
            route = replace(route, ttl_s=view["ttl_s"])
            self.directory.put(route)
        return self._view(route, view, endpoint)

    async def list(self, model_group: str, deployments: Sequence[Mapping[str, Any]], *, limit: int = 100,
                   after: str | None = None, order: str = "desc", state: str | None = None) -> dict[str, Any]:
        """A page of the sessions the router created or found for ``model_group`` (the directory's
        routes by creation time, ``order`` desc = newest first), each as its home deployment sees it;
        ``state`` filters on that view. Raises InvalidListingError for an ``after`` it does not know."""
        if not 1 <= limit <= 1000 or order not in ("asc", "desc"):
            raise InvalidListingError(f"limit must be 1-1000 (got {limit}) and order asc or desc (got {order!r})")
        routes = sorted(self.directory.routes(model_group), key=lambda r: (r.created_s, r.session_id),
                        reverse=order == "desc")
        if after is not None:
            position = next((i for i, r in enumerate(routes) if r.session_id == after), None)
            if position is None:
                raise InvalidListingError(f"after: session {after!r} is not in the router's directory")
            routes = routes[position + 1:]
        views: list[dict[str, Any]] = []
        for route in routes:
            endpoint = _endpoint_of(route.home, deployments)
            view = None if endpoint is None else await endpoint.get_session(route.home_session_id(),
                                                                             self.config.lookup_timeout_s)
            view = self._view(route, view or {"id": route.session_id, "state": "unavailable"}, endpoint)
            if state is None or view.get("state") == state:
                views.append(view)
            if len(views) > limit:
                break
        page = views[:limit]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": len(views) > limit}

    async def delete(self, session_id: str, deployments: Sequence[Mapping[str, Any]]) -> bool:
        """Delete every copy on the deployments that are up, then forget the session."""
        route = await self.find(session_id, deployments)
        if route is None:
            return False
        for deployment_id, copy_id in route.copies.items():
            endpoint = _endpoint_of(deployment_id, deployments)
            if endpoint is not None and await self.health.is_healthy(endpoint):
                await endpoint.delete_session(copy_id, self.config.lookup_timeout_s)
        return self.directory.delete(session_id)

    # ---- find / move ------------------------------------------------------------------------
    async def find(self, session_id: str, deployments: Sequence[Mapping[str, Any]]) -> SessionRoute | None:
        """The directory's route, else ask every deployment (a session created without the router:
        routable, not rebuildable); a found route is recorded."""
        route = self.directory.get(session_id)
        if route is not None or not deployments:
            return route
        endpoints = [KvfleetEndpoint.from_deployment(d) for d in deployments]
        views = await asyncio.gather(*(e.get_session(session_id, self.config.lookup_timeout_s) for e in endpoints),
                                     return_exceptions=True)
        for endpoint, view in zip(endpoints, views):
            if isinstance(view, dict):
                route = SessionRoute(session_id=session_id, model_group=endpoint.model_group,
                                     home=endpoint.deployment_id, copies={endpoint.deployment_id: session_id})
                self.directory.put(route)
                return route
        return None

    async def holds(self, route: SessionRoute, endpoint: KvfleetEndpoint) -> bool:
        copy_id = route.copies.get(endpoint.deployment_id)
        return copy_id is not None and await endpoint.get_session(copy_id, self.config.lookup_timeout_s) is not None

    async def move(self, route: SessionRoute, endpoint: KvfleetEndpoint, verify_copy: bool = True) -> SessionRoute:
        """Make ``endpoint`` the session's home: reuse a copy it still holds, else rebuild the session
        there from its stored context. Raises SessionLostError when it cannot be rebuilt."""
        async with self._lock(route.session_id):
            current = self.directory.get(route.session_id) or route
            if current.home == endpoint.deployment_id and not verify_copy:
                return current
            if endpoint.deployment_id in current.copies and (not verify_copy or await self.holds(current, endpoint)):
                moved = current.moved_to(endpoint.deployment_id, current.copies[endpoint.deployment_id], rebuilt=False)
            else:
                moved = await self._rebuild(current.without_copy(endpoint.deployment_id), endpoint)
            self.directory.put(moved)
            return moved

    async def _rebuild(self, route: SessionRoute, endpoint: KvfleetEndpoint) -> SessionRoute:
        if not route.rebuildable:
            raise SessionLostError(
                f"session {route.session_id!r} was held by deployment {route.home!r}, which is down or lost it, "
                "and the router has no copy of its context (it was not created through the router's "
                "POST /v1/sessions); load the context again to get a new session")
        try:
            view = await endpoint.create_session(route.context, route.press, route.ttl_s,
                                                 self.config.session_timeout_s)
        except Exception as exc:
            raise SessionLostError(f"session {route.session_id!r}: rebuilding it on deployment "
                                   f"{endpoint.deployment_id!r} failed ({exc}); retry later") from exc
        self.rebuilds += 1
        log.warning("session %s rebuilt on %s (was on %s) as %s", route.session_id, endpoint.deployment_id,
                    route.home, view["id"])
        return route.moved_to(endpoint.deployment_id, view["id"], rebuilt=True)

    # ---- helpers ----------------------------------------------------------------------------
    async def _healthy_endpoints(self, deployments: Sequence[Mapping[str, Any]]) -> list[KvfleetEndpoint]:
        endpoints = [KvfleetEndpoint.from_deployment(d) for d in deployments]
        healthy = await asyncio.gather(*(self.health.is_healthy(e) for e in endpoints))
        return [e for e, ok in zip(endpoints, healthy) if ok]

    def _lock(self, session_id: str) -> asyncio.Lock:
        key = (session_id, id(asyncio.get_running_loop()))
        return self._locks.setdefault(key, asyncio.Lock())

    @staticmethod
    def _view(route: SessionRoute, view: dict[str, Any], endpoint: KvfleetEndpoint | None) -> dict[str, Any]:
        return {**view, "id": route.session_id,
                "router": {"model": route.model_group, "home": route.home,
                           "api_base": endpoint.api_base if endpoint else None, "copies": dict(route.copies),
                           "rebuilds": route.rebuilds, "rebuildable": route.rebuildable}}


def _endpoint_of(deployment_id: str, deployments: Sequence[Mapping[str, Any]]) -> KvfleetEndpoint | None:
    for deployment in deployments:
        if str((deployment.get("model_info") or {}).get("id")) == deployment_id:
            return KvfleetEndpoint.from_deployment(deployment)
    return None
