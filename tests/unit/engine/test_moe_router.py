"""The ``moe_router`` press on the embedded model: deterministic, exact ratio, every router type,
cache_aware, statistics, wrappers, and 422s for bad options."""

from __future__ import annotations

import json

import pytest
import torch
from kvpress import KnormPress

from deployments.engine.presses import describe_presses, install_press_policy, resolve
from deployments.engine.presses.moe_gate import BUNDLED_DIR, EMBEDDED_ARTIFACT, RouterGate
from deployments.engine.presses.moe_routing import MAX_RATIO, POSITION_EXPERTS, RATIO_BAND, cache_aware_ratio
from kvpool import PressSpec
from kvpool.errors import PressSpecError
from tests.conftest import document

TEXT = document(8)


def _spec(**kwargs) -> PressSpec:
    return PressSpec.model_validate({"name": "moe_router", "compression_ratio": 0.5, **kwargs})


def _kept_sets(ckv) -> list[torch.Tensor]:
    return [layer.keys for layer in ckv.layers]


@pytest.fixture(scope="module")
def routed(engine):
    return engine.prefill(TEXT, _spec())


def test_two_loads_keep_the_same_tokens_and_report_the_same_stats(engine, routed):
    again = engine.prefill(TEXT, _spec())
    assert all(torch.equal(a, b) for a, b in zip(_kept_sets(routed), _kept_sets(again)))
    assert routed.meta.press_stats == again.meta.press_stats


def test_a_fresh_engine_keeps_the_same_tokens(engine, routed):
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    # another replica: own model (in the same dtype as the fixture's), own press
    fresh = KVEngine(load_model(ModelConfig(dtype=engine.dtype)), EMBEDDED_MODEL_ID)
    other = fresh.prefill(TEXT, _spec())
    assert all(torch.equal(a, b) for a, b in zip(_kept_sets(routed), _kept_sets(other)))


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_the_ratio_is_exact_on_every_head(engine, ratio):
    ckv = engine.prefill(TEXT, _spec(compression_ratio=ratio))
    expected = max(1, int(ckv.meta.original_tokens * (1 - ratio)))
    assert {layer.keys.shape[1] for layer in ckv.layers} == {expected}
    assert ckv.meta.kept_tokens == expected


def test_the_alias_is_pikv_s_class_name(engine, routed):
    ckv = engine.prefill(TEXT, PressSpec.model_validate({"name": "MoERouterPress", "compression_ratio": 0.5}))
    assert all(torch.equal(a, b) for a, b in zip(_kept_sets(routed), _kept_sets(ckv)))


def _heads(stats: dict):
    for layer in stats["layer_stats"]:
        yield from zip(layer["experts"], layer["weights"])


def test_stats_have_one_row_per_layer_with_experts_weights_and_kept_tokens_per_head(engine, routed):
    stats = routed.meta.press_stats
    config = engine.model.config
    assert [row["layer"] for row in stats["layer_stats"]] == list(range(config.num_hidden_layers))
    for row, layer in zip(stats["layer_stats"], routed.layers):
        assert len(row["experts"]) == len(row["weights"]) == len(row["tokens_kept"]) == config.num_key_value_heads
        assert row["tokens_kept"] == [layer.keys.shape[1]] * config.num_key_value_heads
    for names, weights in _heads(stats):
        assert set(names) <= set(stats["experts"]) and len(names) == len(weights) >= 1
        assert abs(sum(weights) - 1) < 1e-3 and all(w > 0 for w in weights)
    assert abs(sum(stats["expert_share"].values()) - 1) < 1e-2
    assert stats["compression_ratio_requested"] == stats["compression_ratio_applied"] == 0.5
    assert stats["router_type"] == "adaptive" and stats["avg_aux_loss"] is None
    json.dumps(stats)  # served as JSON in the session view


@pytest.mark.parametrize("router_type,options", [
    ("pikv", {}), ("topk_balanced", {"top_k": 2}), ("topk_balanced", {"top_k": 4}),
    ("adaptive", {"importance_threshold": 0.2}), ("adaptive", {"adaptive_top_k": True}),
    ("eplb", {"capacity_factor": 1.0}), ("hierarchical", {"top_k": 2})])
def test_each_router_type_follows_its_rule(engine, router_type, options):
    ckv = engine.prefill(TEXT, _spec(router_type=router_type, **options))
    stats = ckv.meta.press_stats
    heads = list(_heads(stats))
    counts = [len(names) for names, _ in heads]
    if router_type in ("pikv", "eplb"):
        assert set(counts) == {1}
    if router_type == "topk_balanced":
        assert max(counts) <= options["top_k"]
    if router_type == "adaptive" and "importance_threshold" in options:
        assert all(len(w) == 1 or min(w) >= 0.2 - 1e-3 for _, w in heads)
    if router_type == "eplb":  # no expert serves more than its capacity of the 90 (layer, head) slots
        per_expert = [sum(names[0] == e for names, _ in heads) for e in stats["experts"]]
        assert max(per_expert) <= -(-len(heads) // len(stats["experts"]))
    if router_type == "hierarchical":  # one group per head
        assert all(len({n in POSITION_EXPERTS for n in names}) == 1 for names, _ in heads)
    assert ckv.meta.kept_tokens == max(1, int(ckv.meta.original_tokens * 0.5))


def test_eplb_spreads_the_load_that_pikv_concentrates(engine):
    def load(stats):
        names = [names[0] for names, _ in _heads(stats)]
        return max(names.count(e) for e in stats["experts"])

    pikv = engine.prefill(TEXT, _spec(router_type="pikv")).meta.press_stats
    eplb = engine.prefill(TEXT, _spec(router_type="eplb")).meta.press_stats
    assert load(eplb) <= load(pikv)


@pytest.fixture()
def artifact_dir(tmp_path):
    install_press_policy({"artifact_dir": str(tmp_path)})
    yield tmp_path
    install_press_policy(None)


def _one_expert_gate(path, expert: str) -> None:
    gate = RouterGate.from_json(json.loads((BUNDLED_DIR / EMBEDDED_ARTIFACT).read_text()))
    weights = torch.zeros_like(gate.weights)
    weights[:, :, gate.experts.index(expert), 0] = 20.0
    RouterGate(gate.model, gate.num_layers, gate.num_kv_heads, gate.experts, gate.feature_mean, gate.feature_std,
               weights, {}).to_json()
    path.write_text(json.dumps(RouterGate(gate.model, gate.num_layers, gate.num_kv_heads, gate.experts,
                                          gate.feature_mean, gate.feature_std, weights, {}).to_json()))


def test_a_head_routed_to_one_expert_keeps_exactly_that_kvpress_scorer_s_tokens(engine, artifact_dir):
    _one_expert_gate(artifact_dir / "knorm_only.json", "knorm")
    routed = engine.prefill(TEXT, _spec(router_type="pikv", router_path="knorm_only.json"))
    knorm = engine.prefill(TEXT, PressSpec.model_validate({"name": "knorm", "compression_ratio": 0.5}))
    assert all(torch.equal(a, b) for a, b in zip(_kept_sets(routed), _kept_sets(knorm)))
    assert routed.meta.press_stats["expert_share"]["knorm"] == 1.0


def test_cache_aware_raises_the_ratio_with_pool_pressure_within_its_band(engine):
    calm = engine.prefill(TEXT, _spec(cache_aware=True), pool_pressure=0.3)
    full = engine.prefill(TEXT, _spec(cache_aware=True), pool_pressure=0.9)
    unaware = engine.prefill(TEXT, _spec(), pool_pressure=0.9)
    assert calm.meta.kept_tokens == unaware.meta.kept_tokens > full.meta.kept_tokens
    stats = full.meta.press_stats
    assert stats["compression_ratio_requested"] == 0.5 and stats["pool_pressure"] == 0.9
    assert stats["compression_ratio_applied"] == cache_aware_ratio(0.5, 0.9) == pytest.approx(0.5 + RATIO_BAND * 0.8)
    assert full.meta.kept_tokens == max(1, int(full.meta.original_tokens * (1 - stats["compression_ratio_applied"])))


def test_cache_aware_reads_a_filled_pool_as_the_replica_does(engine, routed):
    """The replica's path (serving/replica.py): a spec asking for ``cache_aware`` makes it read
    ``pool_pressure_of`` its KV pool's usage; a pool filled past half its budget raises the ratio."""
    from deployments.engine.presses.press_stats import pool_pressure_of, wants_pool_pressure
    from kvpool import KVPool, KVPoolConfig, SessionId

    spec = _spec(cache_aware=True)
    assert wants_pool_pressure(spec.model_dump(mode="json")) and not wants_pool_pressure(_spec().model_dump())
    assert wants_pool_pressure({"name": "adakv", "presses": [{"name": "moe_router", "cache_aware": True}]})
    pool = KVPool(KVPoolConfig(host_budget_bytes=int(routed.nbytes / 0.8)))
    assert pool_pressure_of(pool.usage()) == 0.0
    pool.put(routed, SessionId("s1"))  # the pool is now 80 % full
    pressure = pool_pressure_of(pool.usage())
    assert pressure == pytest.approx(0.8, abs=0.01)
    full = engine.prefill(TEXT, spec, pool_pressure=pressure)
    assert full.meta.press_stats["compression_ratio_applied"] == cache_aware_ratio(0.5, pressure) > 0.5
    assert full.meta.kept_tokens < routed.meta.kept_tokens
    assert pool_pressure_of({"host": {"budget_bytes": 0, "held_bytes": 5}}) is None  # no budget known


def test_cache_aware_band():
    assert cache_aware_ratio(0.5, None) == cache_aware_ratio(0.5, 0.5) == 0.5
    assert cache_aware_ratio(0.5, 1.0) == 0.75 and cache_aware_ratio(0.8, 1.0) == MAX_RATIO
    assert cache_aware_ratio(0.25, 0.75) == pytest.approx(0.375)


def test_adakv_allocates_the_router_s_per_head_scores(engine):
    ckv = engine.prefill(TEXT, PressSpec.model_validate(
        {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "moe_router"}]}))
    assert any(layer.is_ragged for layer in ckv.layers)
    rows = ckv.meta.press_stats["layer_stats"]
    assert any(len(set(row["tokens_kept"])) > 1 for row in rows)  # the budget moved between heads
    assert sum(sum(row["tokens_kept"]) for row in rows) == sum(layer.kept_entries() for layer in ckv.layers)
    assert abs(ckv.meta.kept_tokens - ckv.meta.original_tokens * 0.5) <= 1


def test_composed_and_per_layer_wrap_it(engine):
    composed = engine.prefill(TEXT, PressSpec.model_validate({"name": "composed", "presses": [
        {"name": "moe_router", "compression_ratio": 0.3}, {"name": "knorm", "compression_ratio": 0.3}]}))
    t = composed.meta.original_tokens
    first = max(1, int(t * 0.7))
    assert composed.meta.kept_tokens == max(1, int(first * 0.7))
    layers = engine.model.config.num_hidden_layers
    ratios = [0.25 if i % 2 else 0.75 for i in range(layers)]
    per_layer = engine.prefill(TEXT, PressSpec.model_validate(
        {"name": "per_layer", "compression_ratios": ratios, "presses": [{"name": "moe_router"}]}))
    assert [layer.keys.shape[1] for layer in per_layer.layers] == [max(1, int(t * (1 - r))) for r in ratios]
    assert len(per_layer.meta.press_stats["layer_stats"]) == layers


def test_it_is_an_expert_inside_an_allowlisted_custom_press(engine):
    path = "tests.unit.engine.moe_custom_press:RouterAndKnormPress"
    install_press_policy({"custom_allowlist": [path]})
    try:
        ckv = engine.prefill(TEXT, PressSpec.model_validate({"name": path, "compression_ratio": 0.5}))
    finally:
        install_press_policy(None)
    assert ckv.meta.kept_tokens == max(1, int(ckv.meta.original_tokens * 0.5))


@pytest.mark.parametrize("options,field", [
    ({"router_type": "random"}, "router_type"), ({"top_k": 9}, "top_k"), ({"router_type": "pikv", "top_k": 2}, "top_k"),
    ({"capacity_factor": 2.0}, "capacity_factor"), ({"router_type": "eplb", "capacity_factor": 0.5}, "capacity_factor"),
    ({"router_type": "pikv", "importance_threshold": 0.3}, "importance_threshold"),
    ({"router_type": "adaptive", "importance_threshold": 1.5}, "importance_threshold"),
    ({"router_type": "eplb", "adaptive_top_k": True}, "adaptive_top_k"), ({"num_experts": 8}, "num_experts"),
    ({"dropout": 1.5}, "dropout"), ({"top_k": "two"}, "top_k"), ({"temperature": 1.0}, "temperature"),
    ({"router_path": "gate.json"}, "artifact"),
])
def test_bad_options_are_press_spec_errors_naming_the_field(options, field):
    with pytest.raises(PressSpecError, match=field):
        resolve(_spec(**options))


def test_inert_options_are_accepted_and_listed():
    resolve(_spec(dropout=0.1, aux_loss_weight=0.01))
    row = next(r for r in describe_presses() if r["name"] == "moe_router")
    assert {"dropout", "aux_loss_weight", "router_type", "cache_aware", "router_path"} <= set(row["arguments"])
    assert "inert" in row["summary"] and row["query_agnostic"] is True


def test_an_artifact_for_another_model_is_refused(engine, artifact_dir):
    gate = json.loads((BUNDLED_DIR / EMBEDDED_ARTIFACT).read_text())
    gate["num_layers"], gate["gate"] = 2, gate["gate"][:2]
    (artifact_dir / "small.json").write_text(json.dumps(gate))
    with pytest.raises(PressSpecError, match="trained for"):
        engine.prefill(TEXT, _spec(router_path="small.json"))


def test_the_shipped_artifact_is_small_and_loads():
    path = BUNDLED_DIR / EMBEDDED_ARTIFACT
    gate = RouterGate.from_json(json.loads(path.read_text()))
    assert path.stat().st_size < 100_000 and gate.training.get("validation")
    assert not torch.equal(gate.weights, torch.zeros_like(gate.weights))  # trained, not a uniform placeholder
    assert isinstance(resolve(_spec()).press.experts["knorm"], KnormPress)
