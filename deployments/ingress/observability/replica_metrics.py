"""Prometheus view of each replica's batched decode, from the DecodeActor's ``stats()["batch"]``
(a snapshot refreshed on each scrape, like the pool gauges): batch size per step (histogram),
queue length, running rows, KV columns they hold, steps/s and tokens/s (last 10 s), step, token,
join and extend-forward totals."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric


class BatchMetricsCollector:
    def __init__(self) -> None:
        self.latest: dict[str, dict] = {}

    def update(self, replica: str, batch: dict | None) -> None:
        if batch and batch.get("enabled"):
            self.latest[replica] = batch

    def collect(self) -> Iterator[Metric]:
        hist = HistogramMetricFamily("kvfleet_decode_batch_size", "rows decoded per batched step", labels=["replica"])
        gauges = {
            "waiting": GaugeMetricFamily("kvfleet_decode_queue_length", "generations waiting to join the batch",
                                         labels=["replica"]),
            "running": GaugeMetricFamily("kvfleet_decode_batch_running", "generations in the running batch",
                                         labels=["replica"]),
            "kv_tokens": GaugeMetricFamily("kvfleet_decode_kv_tokens", "KV columns (token positions) the running "
                                           "rows' caches hold, summed over rows", labels=["replica"]),
            "steps_per_s": GaugeMetricFamily("kvfleet_decode_steps_per_second", "batched decode steps per second "
                                             "(last 10 s)", labels=["replica"]),
            "tokens_per_s": GaugeMetricFamily("kvfleet_decode_batch_tokens_per_second", "tokens decoded per second "
                                              "by the replica (last 10 s)", labels=["replica"]),
        }
        counters = {
            "steps": CounterMetricFamily("kvfleet_decode_steps", "batched decode steps", labels=["replica"]),
            "tokens": CounterMetricFamily("kvfleet_decode_batch_tokens", "tokens decoded by batched steps",
                                          labels=["replica"]),
            "joins": CounterMetricFamily("kvfleet_decode_joins", "generations that joined the batch",
                                         labels=["replica"]),
            "extend_forwards": CounterMetricFamily("kvfleet_decode_extend_forwards", "forwards that fed "
                                                   "joiners' questions (a step's joiners ride in its one packed "
                                                   "forward; more only when one is retried alone)",
                                                   labels=["replica"]),
        }
        for replica, batch in sorted(self.latest.items()):
            buckets = [(le, float(n)) for le, n in batch["batch_size_buckets"].items()]
            hist.add_metric([replica], [*buckets, ("+Inf", float(batch["steps"]))], float(batch["batch_size_sum"]))
            for key, family in (*gauges.items(), *counters.items()):
                family.add_metric([replica], float(batch[key]))
        yield hist
        yield from gauges.values()
        yield from counters.values()
