"""Admin HTTP routes (``/admin/...``), mixed into the Ingress class. Admin key required when API
keys are configured. Mutating actions return ``{"event_id"}``; poll ``GET /admin/events/{id}``.

| route | action |
|---|---|
| GET  /admin/health | replicas alive/draining, control-plane counters, recovery backlog and progress |
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

from fastapi import Header

from deployments.ingress.admin.schema import (AdminCompressRequest, AdminEvent, AdminMoveRequest, ClearRequest,
                                              DrainRequest, EventRef, LookupReply, LookupRequest, SessionRef)
from deployments.ingress.errors import ERRORS, APIError
from deployments.ingress.fastapi_app import api


class AdminRoutes:
    """Needs ``self.auth``, ``self.control``, ``self.replicas`` and ``self.limits`` from the Ingress."""

    auth: Any
    control: Any
    replicas: dict[str, Any]
    limits: Any  # deployments.ingress.guards.limits.RequestLimits

    async def _admin(self, authorization: str | None, x_api_key: str | None, action: str, **kwargs: Any) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        return await self.control.admin_action.remote(action, **kwargs)

    @api.get("/admin/health", responses=ERRORS)
    async def admin_health(self, authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        stats = await self.control.stats.remote()
        return {"status": "ok", "replicas": [{"replica_id": rid, **info} for rid, info in stats["replicas"].items()],
                "sessions": stats["sessions"], "counters": stats["counters"] | stats["runner"],
                "recovery": stats["recovery"]}

    @api.get("/admin/stats", responses=ERRORS)
    async def admin_stats(self, authorization: str | None = Header(None), x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        names = list(self.replicas)
        pools = await asyncio.gather(*(asyncio.wait_for(self.replicas[n].stats.remote(), 30) for n in names),
                                     return_exceptions=True)
        return {"cluster": await self.control.stats.remote(),
                "replicas": {n: (p if isinstance(p, dict) else {"error": str(p)}) for n, p in zip(names, pools)}}

    @api.get("/admin/stats/{replica_id}", responses=ERRORS)
    async def admin_replica_stats(self, replica_id: str, authorization: str | None = Header(None),
                                  x_api_key: str | None = Header(None)) -> dict:
        """One replica's KV pool snapshot (what ``kvfleet stats <url>`` reads)."""
        self.auth.require_admin(authorization, x_api_key)
        if replica_id not in self.replicas:
            raise APIError(404, f"no replica {replica_id!r}; replicas: {', '.join(self.replicas)}", "replica_not_found")
        return await asyncio.wait_for(self.replicas[replica_id].stats.remote(), 30)

    @api.post("/admin/lookup", responses={200: {"model": LookupReply}, **ERRORS})
    async def admin_lookup(self, body: LookupRequest, authorization: str | None = Header(None),
                           x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        self.limits.check_lookup(body.token_ids)
        return await self._admin(authorization, x_api_key, "lookup", **body.model_dump())

    @api.post("/admin/move", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_move(self, body: AdminMoveRequest, authorization: str | None = Header(None),
                         x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "move", **body.model_dump())

    @api.post("/admin/pin", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_pin(self, body: SessionRef, authorization: str | None = Header(None),
                        x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "pin", **body.model_dump())

    @api.post("/admin/unpin", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_unpin(self, body: SessionRef, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "unpin", **body.model_dump())

    @api.post("/admin/clear", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_clear(self, body: ClearRequest, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "clear", **body.model_dump())

    @api.post("/admin/compress", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_compress(self, body: AdminCompressRequest, authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "compress", **body.model_dump())

    @api.post("/admin/decompress", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_decompress(self, body: SessionRef, authorization: str | None = Header(None),
                               x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "decompress",
                                 **body.model_dump())

    @api.post("/admin/drain", responses={200: {"model": EventRef}, **ERRORS})
    async def admin_drain(self, body: DrainRequest, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        return await self._admin(authorization, x_api_key, "drain", **body.model_dump())

    @api.get("/admin/events/{event_id}", responses={200: {"model": AdminEvent}, **ERRORS})
    async def admin_event(self, event_id: str, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        self.auth.require_admin(authorization, x_api_key)
        return await self.control.admin_event.remote(event_id)
