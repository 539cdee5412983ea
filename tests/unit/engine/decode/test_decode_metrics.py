"""The decode loop's counters and their Prometheus form (as the ingress renders /metrics)."""

from __future__ import annotations

from deployments.engine.decode.stats import LoopStats
from deployments.ingress.observability.metrics import IngressMetrics


def test_loop_stats_count_steps_rows_and_buckets():
    stats = LoopStats()
    for rows in (1, 3, 3, 9):
        stats.record(rows, joins=1, tokens=rows, seconds=0.01, queue_length=2)
    snap = stats.snapshot()
    assert snap["steps"] == 4 and snap["tokens"] == 16 and snap["batch_size_sum"] == 16
    assert snap["batch_size_buckets"]["1"] == 1 and snap["batch_size_buckets"]["4"] == 3
    assert snap["batch_size_buckets"]["16"] == 4 and snap["queue_length"] == 2 and snap["last_batch_size"] == 9
    assert snap["tokens_per_s"] == 16 / stats.window_s


def test_replica_batch_stats_become_prometheus_families():
    stats = LoopStats()
    stats.record(5, joins=5, tokens=5, seconds=0.1, queue_length=1, extends=2)
    metrics = IngressMetrics()
    metrics.update_replica("replica-0", {"batch": {**stats.snapshot(), "enabled": True, "running": 5, "waiting": 1,
                                                       "kv_tokens": 3100}})
    metrics.update_replica("replica-1", {"batch": {"enabled": False}})
    text = metrics.render().decode()
    assert 'kvfleet_decode_batch_size_bucket{le="4",replica="replica-0"} 0.0' in text
    assert 'kvfleet_decode_batch_size_bucket{le="8",replica="replica-0"} 1.0' in text
    assert 'kvfleet_decode_batch_size_sum{replica="replica-0"} 5.0' in text
    assert 'kvfleet_decode_queue_length{replica="replica-0"} 1.0' in text
    assert 'kvfleet_decode_batch_running{replica="replica-0"} 5.0' in text
    assert 'kvfleet_decode_kv_tokens{replica="replica-0"} 3100.0' in text
    assert 'kvfleet_decode_steps_total{replica="replica-0"} 1.0' in text
    assert 'kvfleet_decode_joins_total{replica="replica-0"} 5.0' in text
    assert 'kvfleet_decode_extend_forwards_total{replica="replica-0"} 2.0' in text
    assert "replica-1" not in text.split("kvfleet_decode_batch_size")[1]


def test_prefill_preemptions_of_each_replica_become_a_gauge():
    metrics = IngressMetrics()
    metrics.update_replica("replica-0", {"prefill": {"preemptions": 3}})
    metrics.update_replica("replica-1", {"prefill": {}})  # its prefill actor restarting: no figure, no zero
    text = metrics.render().decode()
    assert 'kvfleet_prefill_preemptions{replica="replica-0"} 3.0' in text
    assert 'kvfleet_prefill_preemptions{replica="replica-1"}' not in text
