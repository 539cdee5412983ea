"""Sessions API routes (``/v1/sessions``), mixed into the Ingress deployment class.

| route | what |
|---|---|
| POST   /v1/sessions | load a context once (``context``, ``documents`` or ``messages``) under a press: the reply is the session view (``wait: false``: 202 at once; ``stream: true``: progress events) |
| GET    /v1/sessions/{id} | the session view |
| DELETE /v1/sessions/{id} | delete it and free its cache |
| GET    /v1/sessions | the caller's sessions, a page: ``limit`` (1-1000, default 100), ``after`` (cursor: the last id of the previous page), ``order`` (``desc`` newest first, default; ``asc``), filters ``state`` and ``model``; ``{"object": "list", "data", "first_id", "last_id", "has_more"}`` (OpenAI list shape) |
| PATCH  /v1/sessions/{id} | ``ttl_s`` (idle TTL in seconds, ``null``: never expires) **or** ``expire_time`` (Unix seconds or RFC 3339: when it expires if unused), and/or ``pinned``; returns the session view |

A load runs detached from its request (deployments.common.detached): a client that hangs up
never leaves the session LOADING; it completes or ends failed. ``PATCH`` is modelled on Gemini's
explicit context caches; kvfleet's TTL is idle time: every question restarts it, so
``expire_time`` in the view is ``last_used + ttl_s`` (null when pinned or without TTL). Errors:
400 bad body/parameters, 401, 404 unknown or another owner's session, 409 pinning a session
that is not ready yet, 413 context too long, 422 bad press.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
import time
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import Body, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from ray.serve.exceptions import RayServeException

from deployments.engine.presses import resolve
from deployments.ingress.errors import ERRORS, error_body, to_api_error
from deployments.ingress.failover import ACTORS_GONE
from deployments.ingress.fastapi_app import api
from deployments.ingress.sessions.examples import SESSION
from deployments.ingress.sessions.replies import Session, SessionDeleted, SessionList, session_view
from deployments.ingress.sessions.schema import SessionCreateRequest, SessionUpdateRequest
from deployments.ingress.sse import SSE_DONE, sse

SessionStateName = Literal["loading", "ready", "spilled", "migrating", "rebuilding", "failed", "deleted"]


class SessionRoutes:
    """Needs ``self.auth``, ``self.control``, ``self.replicas``, ``self.config``, ``self.limits``,
    ``self.context_limit``, ``self.loads``, ``self.metrics`` and ``self._check_model`` from the Ingress."""

    auth: Any
    control: Any
    replicas: dict[str, Any]

    @api.post("/v1/sessions", responses={200: {"model": Session}, 202: {"model": Session}, **ERRORS})
    async def create_session(self, body: Annotated[SessionCreateRequest, Body(openapi_examples=SESSION)],
                             authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> Any:
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        self._check_model(req.model)
        self.limits.check_session(req)
        press = req.press or self.config.default_press
        resolve(press)  # 422 before anything is placed
        await asyncio.to_thread(self.context_limit.check, req.context_value())  # 413 likewise
        # Open + load run detached from this request (deployments.common.detached): a client that hangs
        # up never leaves the session LOADING; it completes or ends failed (issue 14).
        opened_future = asyncio.get_running_loop().create_future()
        load = self.loads.start(self._open_and_load(owner, req, press.model_dump(mode="json"), opened_future),
                                name="session-load")
        opened = await asyncio.shield(opened_future)
        session_id, replica_id = opened["session"]["id"], opened["replica"]
        if req.stream:
            return StreamingResponse(self._load_events(session_id, replica_id, load), media_type="text/event-stream")
        if not req.wait:
            return JSONResponse(session_view(opened["session"]), status_code=202)
        return await asyncio.shield(load)

    async def _open_and_load(self, owner: str, req: SessionCreateRequest, press: dict,
                             opened_future: asyncio.Future) -> dict:
        try:
            opened = await self.control.open_session.remote(
                owner=owner, model=req.model, context=req.context_value(), press=press, ttl_s=req.ttl_s,
                pinned=req.pinned)
        except BaseException as exc:
            opened_future.set_exception(exc)
            raise
        opened_future.set_result(opened)
        return await self._load(opened["session"]["id"], opened["replica"], req.context_value(), press, req.pinned,
                                owner)

    async def _load(self, session_id: str, replica_id: str, context: Any, press: dict, pinned: bool,
                    owner: str | None = None) -> dict:
        """Prefill and store on ``replica_id``; if that replica's model actors die under the load
        (SIGKILL, OOM), the load is placed once more elsewhere instead of failing with a 503."""
        start = time.perf_counter()
        try:
            try:
                stored = await asyncio.wait_for(
                    self.replicas[replica_id].load_session.remote(session_id, context, press, pinned, owner),
                    timeout=self.config.limits.load_timeout_s)
            except ACTORS_GONE:  # died, or restarting them (ActorsRestarting)
                replica_id = await self.control.relocate_load.remote(session_id, replica_id)
                stored = await asyncio.wait_for(  # moved once: waits for a restarting replica's actors
                    self.replicas[replica_id].load_session.remote(session_id, context, press, pinned, owner, True),
                    timeout=max(1.0, self.config.limits.load_timeout_s - (time.perf_counter() - start)))
        except BaseException as exc:
            await self.control.mark_load_failed.remote(session_id, to_api_error(exc).message)
            if isinstance(exc, RayServeException):
                raise to_api_error(exc) from exc  # as in _first
            raise
        record = await self.control.mark_loaded.remote(session_id, stored)
        self.metrics.sessions_loaded.inc()
        self.metrics.context_tokens.inc(stored["read_tokens"])
        view = session_view(record)
        view["timings"] = {"load_s": round(time.perf_counter() - start, 4), "prefill_store_s": round(stored["load_s"], 4)}
        return view

    async def _load_events(self, session_id: str, replica_id: str, load: Any) -> AsyncIterator[str]:
        yield sse({"event": "placed", "session_id": session_id, "replica": replica_id})
        yield sse({"event": "prefill_started", "session_id": session_id})
        try:
            view = await asyncio.shield(load)  # a client that hangs up does not cancel the load
            yield sse({"event": "ready", **view})
        except Exception as exc:
            yield sse({"event": "failed", **error_body(to_api_error(exc))})
        yield SSE_DONE

    @api.get("/v1/sessions/{session_id}", responses={200: {"model": Session}, **ERRORS})
    async def get_session(self, session_id: str, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        return session_view(await self.control.session.remote(session_id, owner))

    @api.delete("/v1/sessions/{session_id}", responses={200: {"model": SessionDeleted}, **ERRORS})
    async def delete_session(self, session_id: str, authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        record = await self.control.delete_session.remote(session_id, owner)
        return {"id": record["id"], "object": "session", "deleted": True}

    @api.get("/v1/sessions", responses={200: {"model": SessionList}, **ERRORS})
    async def list_sessions(self, limit: int = Query(100, ge=1, le=1000), after: str | None = Query(None),
                            order: Literal["asc", "desc"] = Query("desc"), state: SessionStateName | None = Query(None),
                            model: str | None = Query(None), authorization: str | None = Header(None),
                            x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        page = await self.control.list_page.remote(owner, limit=limit, after=after, order=order, state=state,
                                                   model=model)
        data = [session_view(r) for r in page["data"]]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": page["has_more"]}

    @api.patch("/v1/sessions/{session_id}", responses={200: {"model": Session}, **ERRORS})
    async def update_session(self, session_id: str, body: Annotated[SessionUpdateRequest, Body()],
                             authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        record = await self.control.session.remote(session_id, owner)
        changes = req.changes(record["last_used_s"], time.time())
        return session_view(await self.control.update_session.remote(session_id, owner, changes))
