"""``GET /metrics`` (Prometheus text), mixed into the Ingress class: the ingress's own counters plus
gauges refreshed from every replica's ``stats()`` and the control plane's counters at scrape time.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
from typing import Any

from fastapi.responses import PlainTextResponse

from deployments.ingress.fastapi_app import api


class MetricsRoutes:
    """Needs ``self.replicas``, ``self.control``, ``self.router`` and ``self.metrics`` from the Ingress."""

    control: Any
    replicas: dict[str, Any]

    @api.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(self) -> str:
        results = await asyncio.gather(*(asyncio.wait_for(h.stats.remote(), 10) for h in self.replicas.values()),
                                       return_exceptions=True)
        for name, stats in zip(self.replicas, results):
            if isinstance(stats, dict):
                self.metrics.update_replica(name, stats)
        cluster = await self.control.cluster.remote()
        self.metrics.update_control(cluster["counters"] | self.router.counters())
        return self.metrics.render().decode()
