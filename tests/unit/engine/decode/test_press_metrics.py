"""A replica's press statistics totals (PressStatsTotals, what /admin/stats shows) in their
Prometheus form, as the ingress renders /metrics."""

from __future__ import annotations

from deployments.engine.presses.press_stats import PressStatsTotals
from deployments.ingress.observability.metrics import IngressMetrics


def _load(router_type: str, requested: float, applied: float, share: dict[str, float]) -> dict:
    return {"press": "moe_router", "router_type": router_type, "compression_ratio_requested": requested,
            "compression_ratio_applied": applied, "expert_share": share, "layer_stats": []}


def test_press_totals_become_prometheus_series_per_replica():
    totals = PressStatsTotals()
    totals.add(_load("pikv", 0.5, 0.5, {"knorm": 0.2, "keydiff": 0.8}))
    totals.add(_load("eplb", 0.5, 0.7, {"knorm": 0.6, "keydiff": 0.4}))  # cache_aware raised this one
    totals.add({})  # a press without statistics: not counted
    metrics = IngressMetrics()
    metrics.update_replica("replica-0", {"press_stats": totals.snapshot()})
    metrics.update_replica("replica-1", {"press_stats": PressStatsTotals().snapshot()})
    text = metrics.render().decode()
    assert 'kvfleet_press_stats_loads_total{replica="replica-0"} 2.0' in text
    assert 'kvfleet_press_stats_loads_total{replica="replica-1"} 0.0' in text
    assert 'kvfleet_press_router_type_loads_total{replica="replica-0",router_type="eplb"} 1.0' in text
    assert 'kvfleet_press_cache_aware_raised_loads_total{replica="replica-0"} 1.0' in text
    assert 'kvfleet_press_ratio_requested_mean{replica="replica-0"} 0.5' in text
    assert 'kvfleet_press_ratio_applied_mean{replica="replica-0"} 0.6' in text
    assert 'kvfleet_press_expert_share{expert="keydiff",replica="replica-0"} 0.6' in text
    assert 'kvfleet_press_expert_share{expert="knorm",replica="replica-0"} 0.4' in text
    assert 'expert="knorm",replica="replica-1"' not in text  # no loads, no expert series


def test_a_replica_without_press_totals_exports_no_press_series():
    metrics = IngressMetrics()
    metrics.update_replica("replica-0", {"session_count": 1})
    assert "kvfleet_press_stats_loads_total{" not in metrics.render().decode()
