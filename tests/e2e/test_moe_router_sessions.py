"""The ``moe_router`` press served for real (docs/presses.md, issue #28) on the shared app: a
session loaded under it reports its ``get_stats()`` - per layer each KV head's chosen experts,
their weights and the tokens kept - in the load reply AND in ``GET /v1/sessions/{id}``; a second
load of the same text routes and keeps the same; each replica's totals are in ``/admin/stats``
and in ``/metrics`` as Prometheus series; ``cache_aware`` reads the replica's real pool pressure;
bad options are 422s naming the field."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import document
from tests.e2e.conftest import assert_openai_error, create, metric_values
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
PRESS = {"name": "moe_router", "compression_ratio": 0.5, "router_type": "topk_balanced"}
LAYERS = 30  # SmolLM2-135M
KV_HEADS = 3


@pytest.fixture(scope="module")
def routed(app_url: str) -> dict:
    return create(app_url, {"context": document(), "press": PRESS})


def test_the_session_view_serves_each_layer_s_experts_weights_and_tokens_kept(http, routed):
    stats = routed["press_stats"]
    assert stats["press"] == "moe_router" and stats["router_type"] == "topk_balanced"
    assert stats["compression_ratio_requested"] == stats["compression_ratio_applied"] == 0.5
    kept = max(1, int(routed["tokens_read"] * 0.5))  # the exact ratio, on every head
    assert [row["layer"] for row in stats["layer_stats"]] == list(range(LAYERS))
    for row in stats["layer_stats"]:
        assert len(row["experts"]) == len(row["weights"]) == len(row["tokens_kept"]) == KV_HEADS
        for names, weights in zip(row["experts"], row["weights"]):
            assert 1 <= len(names) <= 2 and set(names) <= set(stats["experts"])  # topk_balanced: a top-2 mixture
            assert all(w > 0 for w in weights) and abs(sum(weights) - 1) < 1e-3
        assert row["tokens_kept"] == [kept] * KV_HEADS
    assert abs(sum(stats["expert_share"].values()) - 1) < 1e-3

    view = http.get(f"/v1/sessions/{routed['id']}").json()
    assert view["press_stats"] == stats and view["tokens_kept"] == kept
    listed = http.get("/v1/sessions", params={"limit": 100}).json()["data"]
    assert next(s for s in listed if s["id"] == routed["id"])["press_stats"] == stats


def test_a_press_without_statistics_has_none(http, facts_session):
    assert http.get(f"/v1/sessions/{facts_session['id']}").json()["press_stats"] is None


def test_a_second_load_of_the_same_text_routes_and_keeps_the_same(app_url, routed):
    again = create(app_url, {"context": document(), "press": PRESS})
    assert again["id"] != routed["id"] and again["press_stats"] == routed["press_stats"]


def test_replica_totals_are_in_admin_stats_and_metrics(app_url, http, routed):
    replicas = http.get("/admin/stats").json()["replicas"]
    totals = replicas[routed["replica"]]["press_stats"]
    assert totals["loads"] >= 1 and totals["router_types"].get("topk_balanced", 0) >= 1
    assert set(totals["expert_share"]) == set(routed["press_stats"]["experts"])

    label = f'{{replica="{routed["replica"]}"}}'
    assert metric_values(app_url, "kvfleet_press_stats_loads_total")[label] == totals["loads"]
    assert metric_values(app_url, "kvfleet_press_ratio_applied_mean")[label] == totals["mean_ratio_applied"]
    shares = metric_values(app_url, "kvfleet_press_expert_share")
    for expert, share in totals["expert_share"].items():
        assert shares[f'{{expert="{expert}",replica="{routed["replica"]}"}}'] == share
    by_type = metric_values(app_url, "kvfleet_press_router_type_loads_total")
    assert by_type[f'{{replica="{routed["replica"]}",router_type="topk_balanced"}}'] == totals["router_types"]["topk_balanced"]


def test_cache_aware_reads_the_replica_s_pool_pressure(app_url):
    from deployments.engine.presses.moe_routing import cache_aware_ratio

    session = create(app_url, {"context": document(), "press": {**PRESS, "cache_aware": True}})
    stats = session["press_stats"]
    assert stats["cache_aware"] is True
    assert isinstance(stats["pool_pressure"], float) and 0 <= stats["pool_pressure"] < 1  # bytes held / budget
    assert stats["compression_ratio_applied"] == cache_aware_ratio(0.5, stats["pool_pressure"])
    assert session["tokens_kept"] == max(1, int(session["tokens_read"] * (1 - stats["compression_ratio_applied"])))


@pytest.mark.parametrize("options, field", [({"router_type": "random"}, "router_type"), ({"top_k": 9}, "top_k"),
                                            ({"dropout": 1.5}, "dropout")])
def test_bad_options_are_422_naming_the_field(app_url, options, field):
    response = httpx.post(f"{app_url}/v1/sessions", timeout=60,
                          json={"model": MODEL, "context": "abc", "press": {**PRESS, **options}})
    assert field in assert_openai_error(response, 422, "invalid_press")["message"]
