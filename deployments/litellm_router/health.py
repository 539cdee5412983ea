"""Liveness of kvfleet deployments: ``GET /health`` answers, reused for ``health_ttl_s``.

A deployment whose Serve application was deleted answers 404 on its route prefix, and one whose
cluster is gone refuses the connection; both read as down here, before a question is sent to it.
"""

from __future__ import annotations

import time

from deployments.litellm_router.endpoint import KvfleetEndpoint


class HealthCache:
    def __init__(self, ttl_s: float, timeout_s: float):
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._seen: dict[str, tuple[bool, float]] = {}
        self.probes = 0

    async def is_healthy(self, endpoint: KvfleetEndpoint, fresh: bool = False) -> bool:
        """The cached answer when younger than ``ttl_s`` (and not ``fresh``), else a new probe."""
        seen = self._seen.get(endpoint.deployment_id)
        if seen is not None and not fresh and time.monotonic() - seen[1] < self.ttl_s:
            return seen[0]
        self.probes += 1
        healthy = await endpoint.is_healthy(self.timeout_s)
        self._seen[endpoint.deployment_id] = (healthy, time.monotonic())
        return healthy

    def mark_down(self, deployment_id: str) -> None:
        self._seen[deployment_id] = (False, time.monotonic())
