"""Prometheus view of the press statistics each replica aggregates over its loads (the decode
actor's ``stats()["press_stats"]``, ``PressStatsTotals.snapshot()`` in
deployments/engine/presses/press_stats.py; the same totals ``/admin/stats`` shows), refreshed on
each scrape like the pool gauges. Only presses that report ``get_stats()`` count (``moe_router``,
alone or wrapped): a replica that loaded none has ``loads`` 0 and no expert series.

Series (label ``replica``; PiKVPress's ``get_stats()`` aggregated):

- ``kvfleet_press_stats_loads_total``: loads whose press reported statistics;
- ``kvfleet_press_router_type_loads_total{router_type}``: those loads by ``router_type``;
- ``kvfleet_press_cache_aware_raised_loads_total``: loads where ``cache_aware`` raised the ratio;
- ``kvfleet_press_ratio_requested_mean`` / ``kvfleet_press_ratio_applied_mean``: mean
  ``compression_ratio`` asked for and applied (0-1, fraction of tokens removed);
- ``kvfleet_press_expert_share{expert}``: each expert's mean routing weight over the loads'
  (layer, KV head) slots (0-1; the experts' shares of one load sum to 1).
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class PressStatsCollector:
    def __init__(self) -> None:
        self.latest: dict[str, dict] = {}

    def update(self, replica: str, totals: dict | None) -> None:
        """``totals``: a replica's ``PressStatsTotals.snapshot()`` (ignored when absent)."""
        if totals:
            self.latest[replica] = totals

    def collect(self) -> Iterator[Metric]:
        loads = CounterMetricFamily("kvfleet_press_stats_loads", "loads whose press reported statistics "
                                    "(get_stats(), e.g. moe_router)", labels=["replica"])
        by_type = CounterMetricFamily("kvfleet_press_router_type_loads", "press-statistics loads by router_type",
                                      labels=["replica", "router_type"])
        raised = CounterMetricFamily("kvfleet_press_cache_aware_raised_loads", "loads whose compression ratio "
                                     "cache_aware raised under KV pool pressure", labels=["replica"])
        requested = GaugeMetricFamily("kvfleet_press_ratio_requested_mean", "mean compression_ratio requested "
                                      "(fraction of tokens removed)", labels=["replica"])
        applied = GaugeMetricFamily("kvfleet_press_ratio_applied_mean", "mean compression_ratio applied "
                                    "(fraction of tokens removed)", labels=["replica"])
        share = GaugeMetricFamily("kvfleet_press_expert_share", "mean routing weight of each expert over the "
                                  "loads' (layer, KV head) slots", labels=["replica", "expert"])
        for replica, totals in sorted(self.latest.items()):
            loads.add_metric([replica], float(totals.get("loads", 0)))
            raised.add_metric([replica], float(totals.get("cache_aware_raised_loads", 0)))
            requested.add_metric([replica], float(totals.get("mean_ratio_requested", 0.0)))
            applied.add_metric([replica], float(totals.get("mean_ratio_applied", 0.0)))
            for router_type, count in sorted((totals.get("router_types") or {}).items()):
                by_type.add_metric([replica, router_type], float(count))
            for expert, value in sorted((totals.get("expert_share") or {}).items()):
                share.add_metric([replica, expert], float(value))
        yield from (loads, by_type, raised, requested, applied, share)
