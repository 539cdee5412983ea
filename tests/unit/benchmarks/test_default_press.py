"""Every compressing default follows the committed quality benchmark (they cannot drift apart).

Reads benchmarks/results/ruler_quality.json (``python benchmarks/ruler_quality.py``: the RULER-
style suite + the document and chat question sets), recomputes its summary from the raw jobs,
re-applies the choice rule (benchmarks/default_choice.py: chosen on the even seeds only) and
compares with every default that compresses:

- ``AppConfig.default_press`` (sessions) and the Serve / k8s configs that spell it out;
- ``AppConfig.plain.press`` (long plain prompts; their compressed prefixes are reused, so they
  need the same query-agnostic choice);
- ``KVPoolConfig.recompress.press`` (re-pruning a stored cache under pressure or on an admin
  ``compress``): the best of the cache-only scorers at the default ratio;
- ``kvfleet demo``'s press.

A walk over AppConfig (nested models, dicts, lists) fails if a new compressing default appears
that this file does not check: a PressSpec other than ``none``, or a press named by a string field
(``...press``, as the re-compression scorer is).
Re-run the benchmark, then change the defaults, when presses change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from benchmarks.default_choice import best_at, choose_default
from benchmarks.press_ranking import choose_min_tokens, long_context_loads, rank_presses
from benchmarks.ruler import split_of
from benchmarks.ruler_stats import load_costs, summarize
from deployments.config import AppConfig
from kvpool import PressSpec
from kvpool.recompress import RECOMPRESS_SCORERS

ROOT = Path(__file__).resolve().parents[3]
RESULT = ROOT / "benchmarks" / "results" / "ruler_quality.json"
CHECKED = {"default_press", "plain.press", "replicas.pool.recompress.press"}  # tied to the result below


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(RESULT.read_text())


@pytest.fixture(scope="module")
def recomputed(result) -> tuple[list[dict], list[dict], dict]:
    """(summary, load costs, choice) recomputed from the raw jobs, not read from the file."""
    from deployments.engine.presses import resolve

    docs = result["documents"]
    summary = summarize(result["jobs"], docs, {d["seed"]: split_of(d["seed"]) for d in docs})
    for row in summary:
        spec = PressSpec(name=row["press"], compression_ratio=row["compression_ratio"])
        row["query_agnostic"] = resolve(spec).query_agnostic
    costs = result.get("cost_runs") or load_costs(result["jobs"], docs)  # as ruler_result.tie_break_costs
    return summary, costs, choose_default(summary, costs)


def _serve_configs() -> dict[str, dict]:
    """default_press of every application in the Serve configs and k8s RayService configs."""
    found = {}
    for path in [ROOT / "configs" / "cluster.yaml", ROOT / "configs" / "cluster-two-apps.yaml",
                 *sorted((ROOT / "k8s").rglob("serve-config.yaml"))]:
        config = yaml.safe_load(path.read_text())
        if "spec" in config:  # a RayService: the Serve config is a YAML string inside it
            config = yaml.safe_load(config["spec"]["serveConfigV2"])
        for i, app in enumerate(config["applications"]):
            if "default_press" in app.get("args", {}):
                found[f"{path.relative_to(ROOT)}[{i}]"] = app["args"]["default_press"]
    return found


def test_session_default_is_the_choice_made_on_the_choose_half(recomputed):
    _, _, choice = recomputed
    default = AppConfig().default_press
    assert (default.name, default.compression_ratio) == (choice["press"], choice["compression_ratio"])
    configs = _serve_configs()
    assert configs, "no Serve config spells out default_press"
    for where, spec in configs.items():
        assert (spec["name"], spec["compression_ratio"], spec.get("min_tokens")) == (
            default.name, default.compression_ratio, default.min_tokens), where


def test_default_min_tokens_is_the_threshold_measured_on_the_choose_half(result, recomputed):
    _, _, choice = recomputed
    short = result["short_contexts"]
    assert (short["press"], short["compression_ratio"]) == (choice["press"], choice["compression_ratio"])
    assert AppConfig().default_press.min_tokens == choose_min_tokens(short["rows"])


def test_plain_prompts_are_compressed_with_the_same_choice(recomputed):
    _, _, choice = recomputed
    plain = AppConfig().plain.press
    assert (plain.name, plain.compression_ratio) == (choice["press"], choice["compression_ratio"])


def test_recompression_uses_the_best_cache_only_scorer_at_the_default_ratio(recomputed):
    summary, _, choice = recomputed
    rows = [r for r in summary if r["split"] == "choose" and r["press"] in RECOMPRESS_SCORERS
            and abs(r["compression_ratio"] - choice["compression_ratio"]) < 1e-9]
    assert {r["press"] for r in rows} == set(RECOMPRESS_SCORERS), f"measure every cache-only scorer; measured {rows}"
    assert len({r["documents"] for r in rows}) == 1, "the cache-only scorers compete on the same documents"
    ranked = sorted(rows, key=lambda r: -r["relative"])
    assert AppConfig().replicas.pool.recompress.press == ranked[0]["press"]


def test_the_demo_compresses_with_the_default(monkeypatch):
    from deployments import cli

    seen = {}
    monkeypatch.setattr(cli, "_demo", lambda args: seen.setdefault("spec", cli.demo_press(args)))
    cli.main(["demo"])
    assert seen["spec"] == AppConfig().default_press


def _press_defaults(value: object, path: str = "") -> dict[str, object]:
    """Every compressing default under ``value``: ``{dotted path: PressSpec or press name}``."""
    if isinstance(value, PressSpec):
        return {path: value} if value.name != "none" else {}
    if isinstance(value, str):
        return {path: value} if path.rsplit(".", 1)[-1].endswith("press") and value != "none" else {}
    if isinstance(value, BaseModel):
        items = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = ((str(key), item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(i), item) for i, item in enumerate(value))
    else:
        return {}
    found: dict[str, object] = {}
    for name, item in items:
        found.update(_press_defaults(item, f"{path}.{name}" if path else name))
    return found


def test_every_compressing_press_default_is_checked_here():
    assert set(_press_defaults(AppConfig())) == CHECKED


def test_the_walk_finds_presses_wherever_a_config_holds_them():
    class Inner(BaseModel):
        press: str = "knorm"
        label: str = "knorm"  # not a press field: a string elsewhere is not a press

    class Outer(BaseModel):
        nested: Inner = Inner()
        by_model: dict = {"m": PressSpec(name="snapkv", compression_ratio=0.3)}
        chain: tuple = (PressSpec(), PressSpec(name="knorm", compression_ratio=0.2))
        off: PressSpec = PressSpec()

    assert set(_press_defaults(Outer())) == {"nested.press", "by_model.m", "chain.1"}


def test_the_choice_never_reads_the_held_back_half(recomputed):
    summary, costs, choice = recomputed
    choose_only = [r for r in summary if r["split"] == "choose"]
    again = choose_default(choose_only, costs)
    assert (again["press"], again["compression_ratio"]) == (choice["press"], choice["compression_ratio"])


def test_the_ranking_only_admits_query_agnostic_presses(recomputed):
    summary, costs, choice = recomputed
    aware = {r["press"] for r in summary if not r["query_agnostic"]}
    assert not {r["press"] for r in best_at(summary, costs, choice["compression_ratio"])} & aware


def test_choose_min_tokens_takes_the_shortest_length_from_which_every_longer_one_keeps_quality():
    rows = [{"tokens_read": 60, "none": 1.0, "press": 0.5}, {"tokens_read": 120, "none": 1.0, "press": 1.0},
            {"tokens_read": 250, "none": 0.8, "press": 0.6}, {"tokens_read": 500, "none": 1.0, "press": 1.0}]
    assert choose_min_tokens(rows) == 500
    rows[2]["press"] = 0.8
    assert choose_min_tokens(rows) == 120


def _row(press: str, worst: float, accuracy: float, load_s: float) -> dict:
    return {"press": press, "compression_ratio": 0.5, "query_agnostic": True, "accuracy": accuracy,
            "accuracy_by_set": {"document": accuracy, "chat": accuracy},
            "relative_by_set": {"document": worst, "chat": 1.0}, "load_s": load_s}


def test_press_quality_ranking_ties_go_to_the_faster_long_context_load():
    summary = [_row("slow_on_long", 1.04, 0.8, 3.3), _row("fast_on_long", 1.04, 0.8, 6.9), _row("worse", 0.9, 0.9, 1.0)]
    assert [r["press"] for r in rank_presses(summary)] == ["slow_on_long", "fast_on_long", "worse"]
    long = {"slow_on_long": 190.0, "fast_on_long": 110.0}
    assert [r["press"] for r in rank_presses(summary, 0.5, long)] == ["fast_on_long", "slow_on_long", "worse"]
    assert rank_presses(summary, 0.5, {"fast_on_long": 110.0})[0]["press"] == "fast_on_long"  # unmeasured last
    assert long_context_loads({"long_contexts": {"rows": [{"press": "a", "load_s": 2.0}]}}) == {"a": 2.0}
    assert long_context_loads({}) is None
