"""Prometheus metrics of the ingress (requests, TTFT, tokens) plus gauges refreshed from the
replicas' pools on each scrape (sessions, bytes per tier, evictions, prefix hits)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        self.bytes_held = Gauge("kvfleet_kv_bytes_held", "KV bytes held", ["replica", "tier"], registry=r)
        self.budget = Gauge("kvfleet_kv_budget_bytes", "KV byte budget", ["replica", "tier"], registry=r)
        self.pool_counter = Gauge("kvfleet_pool_events", "KV pool event counts (evictions, spills, ...)",
                                  ["replica", "event"], registry=r)
        self.control_counter = Gauge("kvfleet_control_plane", "control-plane counters (migrations, rebuilds ...)",
                                     ["counter"], registry=r)

    def update_replica(self, replica: str, stats: dict) -> None:
        self.sessions.labels(replica).set(stats.get("sessions", 0))
        for tier, usage in stats.get("tiers", {}).items():
            self.bytes_held.labels(replica, tier).set(usage.get("held_bytes", 0))
            self.budget.labels(replica, tier).set(usage.get("budget_bytes", 0))
        for name, value in stats.get("counters", {}).items():
            self.pool_counter.labels(replica, name).set(value)

    def update_control(self, counters: dict) -> None:
        for name, value in counters.items():
            self.control_counter.labels(name).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
