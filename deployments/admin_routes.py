"""Admin HTTP routes (``/admin/...``), mixed into the Ingress class. Admin key required when API
keys are configured. Mutating actions return ``{"event_id"}``; poll ``GET /admin/events/{id}``.

| route | action |
|---|---|
| GET  /admin/health | replicas alive/draining, control-plane counters |
| GET  /admin/stats | per replica (pool usage, per-session/per-layer access stats) and cluster counters |
| GET  /admin/stats/{replica} | one replica's pool snapshot (``kvfleet stats http://.../admin/stats/replica-0``) |
| POST /admin/lookup | where a session (``session_id``) or a token prefix (``token_ids``) lives |
| POST /admin/move | move a session to a replica (``transfer`` or ``rebuild``) |
| POST /admin/pin, /admin/unpin | pin a session's cache against eviction |
| POST /admin/clear | free a session, a replica's sessions, or everything (``all: true``) |
| POST /admin/compress | re-prune tighter (``compression_ratio``) or quantize (``codec``) in place |
| POST /admin/decompress | de-quantize in place |
| POST /admin/drain | move every session off a replica and stop placing there |
| GET  /admin/events/{event_id} | status of an admin action |

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
from typing import Any

from fastapi import Body, Header
from pydantic import BaseModel, ConfigDict, Field

from deployments.errors import APIError
from deployments.http_app import api
from deployments.openai_schema import AdminCompressRequest, AdminMoveRequest


class _SessionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str


class _ClearRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = None
    replica: str | None = None
    all: bool = False


class _DrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replica: str


class _LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str | None = None
    token_ids: list[int] | None = Field(default=None, max_length=1_000_000)


class AdminRoutes:
    """Needs ``self.auth``, ``self.control`` and ``self.replicas`` from the Ingress."""

    auth: Any
    control: Any
    replicas: dict[str, Any]

    async def _admin(self, authorization: str | None, x_api_key: str | None, action: str, **kwargs: Any) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        return await self.control.admin_action.remote(action, **kwargs)

    @api.get("/admin/health")
    async def admin_health(self, authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        stats = await self.control.stats.remote()
        return {"status": "ok", "replicas": [{"replica_id": rid, **info} for rid, info in stats["replicas"].items()],
                "sessions": stats["sessions"], "counters": stats["counters"]}

    @api.get("/admin/stats")
    async def admin_stats(self, authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        names = list(self.replicas)
        pools = await asyncio.gather(*(asyncio.wait_for(self.replicas[n].stats.remote(), 30) for n in names),
                                     return_exceptions=True)
        return {"cluster": await self.control.stats.remote(),
                "replicas": {n: (p if isinstance(p, dict) else {"error": str(p)}) for n, p in zip(names, pools)}}

    @api.get("/admin/stats/{replica_id}")
    async def admin_replica_stats(self, replica_id: str, authorization: str | None = Header(None),
                                  x_api_key: str | None = Header(None)) -> dict:
        """One replica's KV pool snapshot (what ``kvfleet stats <url>`` reads)."""
        self.auth.require_admin(authorization, x_api_key)
        if replica_id not in self.replicas:
            raise APIError(404, f"no replica {replica_id!r}; replicas: {', '.join(self.replicas)}", "replica_not_found")
        return await asyncio.wait_for(self.replicas[replica_id].stats.remote(), 30)

    @api.post("/admin/lookup")
    async def admin_lookup(self, body: dict = Body(...), authorization: str | None = Header(None),
                           x_api_key: str | None = Header(None)) -> dict:
        req = _LookupRequest.model_validate(body)
        return await self._admin(authorization, x_api_key, "lookup", **req.model_dump())

    @api.post("/admin/move")
    async def admin_move(self, body: dict = Body(...), authorization: str | None = Header(None),
                         x_api_key: str | None = Header(None)) -> dict:
        req = AdminMoveRequest.model_validate(body)
        return await self._admin(authorization, x_api_key, "move", **req.model_dump())

    @api.post("/admin/pin")
    async def admin_pin(self, body: dict = Body(...), authorization: str | None = Header(None),
                        x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "pin", **_SessionRef.model_validate(body).model_dump())

    @api.post("/admin/unpin")
    async def admin_unpin(self, body: dict = Body(...), authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "unpin", **_SessionRef.model_validate(body).model_dump())

    @api.post("/admin/clear")
    async def admin_clear(self, body: dict = Body(...), authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        req = _ClearRequest.model_validate(body)
        if not (req.session_id or req.replica or req.all):
            raise APIError(400, "clear needs session_id, replica or all: true", "invalid_request")
        return await self._admin(authorization, x_api_key, "clear", **req.model_dump())

    @api.post("/admin/compress")
    async def admin_compress(self, body: dict = Body(...), authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> dict:
        req = AdminCompressRequest.model_validate(body)
        return await self._admin(authorization, x_api_key, "compress", **req.model_dump())

    @api.post("/admin/decompress")
    async def admin_decompress(self, body: dict = Body(...), authorization: str | None = Header(None),
                               x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "decompress",
                                 **_SessionRef.model_validate(body).model_dump())

    @api.post("/admin/drain")
    async def admin_drain(self, body: dict = Body(...), authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "drain", **_DrainRequest.model_validate(body).model_dump())

    @api.get("/admin/events/{event_id}")
    async def admin_event(self, event_id: str, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        return await self.control.admin_event.remote(event_id)
