"""The sessions API on the LiteLLM proxy: ``POST`` / ``GET /v1/sessions`` (a page: ``limit``,
``after``, ``order``, ``state``), ``GET`` / ``PATCH`` / ``DELETE /v1/sessions/{id}``, the same shape
as a kvfleet ingress, with ``model`` naming the LiteLLM model group (required on the list,
optional on GET/PATCH/DELETE: the router knows each session's group). Requests are authenticated like every proxy route (``Authorization: Bearer <proxy key>``).
Errors are OpenAI error JSON with the status of the typed error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.litellm_router.errors import KvfleetRouterError


class RouterSessionRequest(BaseModel):
    """Like kvfleet's POST /v1/sessions body; ``model`` is the LiteLLM model_name."""

    model_config = ConfigDict(extra="forbid")
    model: str
    context: str | None = None
    documents: list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    press: dict[str, Any] | None = None
    ttl_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_context(self) -> "RouterSessionRequest":
        given = [n for n in ("context", "documents", "messages") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of context, documents or messages (got {given or 'none'})")
        return self


class RouterSessionUpdate(BaseModel):
    """``PATCH /v1/sessions/{id}`` body, passed to the home deployment (which validates the values)."""

    model_config = ConfigDict(extra="forbid")
    ttl_s: float | None = None
    expire_time: float | str | None = None
    pinned: bool | None = None


def sessions_router(client_for: Callable[[], Awaitable[Any]], auth: Callable[..., Any]) -> APIRouter:
    """An APIRouter whose routes act through ``await client_for()`` (an object with the
    KvfleetRouterClient session coroutines) after ``auth`` (the proxy's key check)."""
    api = APIRouter(tags=["kvfleet sessions"])

    @api.post("/v1/sessions", dependencies=[Depends(auth)])
    async def create_session(body: dict = Body(...)) -> Any:
        try:
            req = RouterSessionRequest.model_validate(body)
        except ValueError as exc:
            return _error(400, f"invalid session request: {exc}", "invalid_request")
        return await _answer(client_for, "acreate_session", req.model, req.context, documents=req.documents,
                             messages=req.messages, press=req.press, ttl_s=req.ttl_s)

    @api.get("/v1/sessions/{session_id}", dependencies=[Depends(auth)])
    async def get_session(session_id: str, model: str | None = None) -> Any:
        return await _answer(client_for, "aget_session", model, session_id)

    @api.patch("/v1/sessions/{session_id}", dependencies=[Depends(auth)])
    async def update_session(session_id: str, body: dict = Body(...), model: str | None = None) -> Any:
        try:
            changes = RouterSessionUpdate.model_validate(body).model_dump(exclude_unset=True)
        except ValueError as exc:
            return _error(400, f"invalid session update: {exc}", "invalid_request")
        return await _answer(client_for, "aupdate_session", model, session_id, **changes)

    @api.get("/v1/sessions", dependencies=[Depends(auth)])
    async def list_sessions(model: str | None = None, limit: int = 100, after: str | None = None,
                            order: str = "desc", state: str | None = None) -> Any:
        return await _answer(client_for, "alist_sessions", model, limit=limit, after=after, order=order, state=state)

    @api.delete("/v1/sessions/{session_id}", dependencies=[Depends(auth)])
    async def delete_session(session_id: str, model: str | None = None) -> Any:
        deleted = await _answer(client_for, "adelete_session", model, session_id)
        if isinstance(deleted, JSONResponse):
            return deleted
        if not deleted:
            return _error(404, f"session {session_id!r} is unknown", "session_not_found")
        return {"id": session_id, "object": "session", "deleted": True}

    return api


async def _answer(client_for: Callable[[], Awaitable[Any]], method: str, *args: Any, **kwargs: Any) -> Any:
    try:
        client = await client_for()
        return await getattr(client, method)(*args, **kwargs)
    except KvfleetRouterError as exc:
        return _error(exc.status_code, exc.message, type(exc).__name__)


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "service_unavailable_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code, "param": None}}, status_code=status)
