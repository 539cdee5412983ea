"""Prometheus metrics of the ingress (requests, TTFT, tokens) plus gauges refreshed from the
replicas' pools on each scrape (sessions, bytes per tier, evictions, prefix hits, batched decode,
press statistics)."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from deployments.ingress.observability.press_metrics import PressStatsCollector
from deployments.ingress.observability.replica_metrics import BatchMetricsCollector

_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class IngressMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("kvfleet_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.ttft = Histogram("kvfleet_time_to_first_token_seconds", "time to first token", ["kind"],
                              buckets=_LATENCY_BUCKETS_S, registry=r)
        self.request_latency = Histogram("kvfleet_request_seconds", "request latency", ["route"],
                                         buckets=_LATENCY_BUCKETS_S, registry=r)
        self.tokens = Counter("kvfleet_generated_tokens", "completion tokens generated", ["kind"], registry=r)
        self.prompt_tokens = Counter("kvfleet_prompt_tokens", "prompt tokens fed after a stored context",
                                     ["kind"], registry=r)
        self.tokens_per_s = Histogram("kvfleet_decode_tokens_per_second", "decode speed per request",
                                      buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=r)
        self.sessions_loaded = Counter("kvfleet_sessions_loaded", "sessions loaded", registry=r)
        self.context_tokens = Counter("kvfleet_context_tokens_read", "context tokens read at load", registry=r)
        self.sessions = Gauge("kvfleet_sessions", "sessions held per replica", ["replica"], registry=r)
        self.active_streams = Gauge("kvfleet_active_streams", "generations in flight on a replica's decode actor",
                                    ["replica"], registry=r)
        self.bytes_held = Gauge("kvfleet_kv_bytes_held", "KV bytes held", ["replica", "tier"], registry=r)
        self.budget = Gauge("kvfleet_kv_budget_bytes", "KV byte budget", ["replica", "tier"], registry=r)
        self.pool_counter = Gauge("kvfleet_pool_events", "KV pool event counts (evictions, spills, ...)",
                                  ["replica", "event"], registry=r)
        self.control_counter = Gauge("kvfleet_control_plane", "control-plane counters (migrations, rebuilds ...)",
                                     ["counter"], registry=r)
        self.prefill_preemptions = Gauge("kvfleet_prefill_preemptions", "background prefills (recoveries no "
                                         "client waits for) abandoned and redone because a live prefill waited",
                                         ["replica"], registry=r)
        self.batch = BatchMetricsCollector()
        r.register(self.batch)
        self.press_stats = PressStatsCollector()
        r.register(self.press_stats)

    def update_replica(self, replica: str, stats: dict) -> None:
        self.sessions.labels(replica).set(stats.get("session_count", 0))
        self.active_streams.labels(replica).set(stats.get("active_streams", 0))
        for tier, usage in stats.get("tiers", {}).items():
            self.bytes_held.labels(replica, tier).set(usage.get("held_bytes", 0))
            self.budget.labels(replica, tier).set(usage.get("budget_bytes", 0))
        for name, value in stats.get("counters", {}).items():
            self.pool_counter.labels(replica, name).set(value)
        if "preemptions" in stats.get("prefill", {}):
            self.prefill_preemptions.labels(replica).set(stats["prefill"]["preemptions"])
        self.batch.update(replica, stats.get("batch"))
        self.press_stats.update(replica, stats.get("press_stats"))

    def update_control(self, counters: dict) -> None:
        for name, value in counters.items():
            self.control_counter.labels(name).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Pure ASGI middleware (streaming-safe, unlike BaseHTTPMiddleware): counts every HTTP request
    by route template and status, and observes its latency (a stream's: until its last byte), in
    ``RequestMetricsMiddleware.metrics`` - set by the Ingress in its own process (Serve serves a
    pickled copy of the FastAPI app, so the app's ``state`` cannot carry it)."""

    metrics: IngressMetrics | None = None

    def __init__(self, app: Callable[..., Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_watching_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_watching_status)
        finally:
            metrics = RequestMetricsMiddleware.metrics
            if metrics is not None:
                route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded labels
                metrics.requests.labels(route, str(status)).inc()
                metrics.request_latency.labels(route).observe(time.perf_counter() - start)
