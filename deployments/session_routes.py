"""Sessions API routes beyond create/get/delete, mixed into the Ingress class (as admin_routes.py):

| route | what |
|---|---|
| GET   /v1/sessions | the caller's sessions, a page: ``limit`` (1-1000, default 100), ``after`` (cursor: the last id of the previous page), ``order`` (``desc`` newest first, default; ``asc``), filters ``state`` and ``model``; ``{"object": "list", "data", "first_id", "last_id", "has_more"}`` (OpenAI list shape) |
| PATCH /v1/sessions/{id} | ``ttl_s`` (idle TTL in seconds, ``null``: never expires) **or** ``expire_time`` (Unix seconds or RFC 3339: when it expires if unused), and/or ``pinned``; returns the session view |

Modelled on Gemini's explicit context caches (``PATCH`` to extend ``ttl`` / ``expire_time``).
kvfleet's TTL is idle time: every question restarts it, so ``expire_time`` in the view is
``last_used + ttl_s`` (null when pinned or without TTL). Errors: 400 bad body/parameters, 401,
404 unknown or another owner's session, 409 pinning a session that is not ready yet.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import Body, Header, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.admin_schema import ERRORS
from deployments.api_replies import Session, SessionList
from deployments.errors import APIError
from deployments.http_app import api

SessionStateName = Literal["loading", "ready", "spilled", "migrating", "rebuilding", "failed", "deleted"]


class SessionUpdateRequest(BaseModel):
    """``PATCH /v1/sessions/{id}`` body: at least one field; ``ttl_s`` and ``expire_time`` exclude each other."""

    model_config = ConfigDict(extra="forbid")
    ttl_s: float | None = Field(default=None, gt=0)
    expire_time: float | None = Field(default=None, description="Unix seconds or an RFC 3339 timestamp")
    pinned: bool | None = None

    @field_validator("expire_time", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("expire_time must be Unix seconds or an RFC 3339 timestamp "
                                 "(e.g. 2026-01-31T12:00:00Z)") from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()
        return value

    @model_validator(mode="after")
    def _something(self) -> "SessionUpdateRequest":
        if not self.model_fields_set:
            raise ValueError("give at least one of ttl_s, expire_time, pinned")
        if {"ttl_s", "expire_time"} <= self.model_fields_set:
            raise ValueError("give ttl_s or expire_time, not both")
        if "pinned" in self.model_fields_set and self.pinned is None:
            raise ValueError("pinned must be true or false")
        if "expire_time" in self.model_fields_set and self.expire_time is None:
            raise ValueError("expire_time must be a time; to never expire send ttl_s: null")
        return self

    def changes(self, last_used_s: float, now_s: float) -> dict:
        """The record changes: ``ttl_s`` (from ``expire_time`` relative to ``last_used_s``) and/or ``pinned``."""
        out: dict[str, Any] = {}
        if "ttl_s" in self.model_fields_set:
            out["ttl_s"] = self.ttl_s
        if self.expire_time is not None:
            if self.expire_time <= now_s:
                raise APIError(400, f"expire_time {self.expire_time:.0f} is not in the future (now {now_s:.0f})",
                               "invalid_request")
            out["ttl_s"] = self.expire_time - last_used_s
        if self.pinned is not None:
            out["pinned"] = self.pinned
        return out


class SessionRoutes:
    """Needs ``self.auth``, ``self.control`` and ``self._session_view`` from the Ingress."""

    auth: Any
    control: Any

    @api.get("/v1/sessions", responses={200: {"model": SessionList}, **ERRORS})
    async def list_sessions(self, limit: int = Query(100, ge=1, le=1000), after: str | None = Query(None),
                            order: Literal["asc", "desc"] = Query("desc"), state: SessionStateName | None = Query(None),
                            model: str | None = Query(None), authorization: str | None = Header(None),
                            x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        page = await self.control.list_page.remote(owner, limit=limit, after=after, order=order, state=state,
                                                   model=model)
        data = [self._session_view(r) for r in page["data"]]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": page["has_more"]}

    @api.patch("/v1/sessions/{session_id}", responses={200: {"model": Session}, **ERRORS})
    async def update_session(self, session_id: str, body: Annotated[SessionUpdateRequest, Body()],
                             authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        record = await self.control.session.remote(session_id, owner)
        changes = req.changes(record["last_used_s"], time.time())
        return self._session_view(await self.control.update_session.remote(session_id, owner, changes))
