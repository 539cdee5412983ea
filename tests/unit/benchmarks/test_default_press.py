"""The default press is the one the committed quality benchmark ranks first (they cannot drift apart).

Reads benchmarks/results/press_quality.json (written by ``python benchmarks/press_quality.py``),
re-ranks its raw jobs with benchmarks.press_ranking, and compares with AppConfig's default and
configs/cluster.yaml's. Re-run the benchmark, then change the default, when presses change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.press_ranking import choose_min_tokens, long_context_loads, rank_presses, summarize
from deployments.config import AppConfig

ROOT = Path(__file__).resolve().parents[3]
RESULT = ROOT / "benchmarks" / "results" / "press_quality.json"


@pytest.fixture(scope="module")
def result() -> dict:
    return json.loads(RESULT.read_text())


def _cluster_default() -> dict:
    config = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())
    return config["applications"][0]["args"]["default_press"]


def test_default_press_is_the_benchmarks_first_query_agnostic_press(result):
    ranking = rank_presses(summarize(result["jobs"]), 0.5, long_context_loads(result))
    default = AppConfig().default_press
    assert ranking[0]["press"] == default.name == _cluster_default()["name"]
    assert default.compression_ratio == 0.5 == _cluster_default()["compression_ratio"]


def test_default_min_tokens_is_the_measured_threshold(result):
    short = result["short_contexts"]
    assert short["press"] == AppConfig().default_press.name
    measured = choose_min_tokens(short["rows"])
    assert AppConfig().default_press.min_tokens == measured == _cluster_default()["min_tokens"]


def test_the_ranking_only_admits_query_agnostic_presses(result):
    summary = summarize(result["jobs"])
    ranked = {row["press"] for row in rank_presses(summary, 0.5)}
    aware = {row["press"] for row in summary if not row["query_agnostic"]}
    assert ranked and not ranked & aware


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


def test_accuracy_ties_go_to_the_faster_long_context_load():
    summary = [_row("slow_on_long", 1.04, 0.8, 3.3), _row("fast_on_long", 1.04, 0.8, 6.9), _row("worse", 0.9, 0.9, 1.0)]
    assert [r["press"] for r in rank_presses(summary)] == ["slow_on_long", "fast_on_long", "worse"]
    long = {"slow_on_long": 190.0, "fast_on_long": 110.0}
    assert [r["press"] for r in rank_presses(summary, 0.5, long)] == ["fast_on_long", "slow_on_long", "worse"]
    assert rank_presses(summary, 0.5, {"fast_on_long": 110.0})[0]["press"] == "fast_on_long"  # unmeasured last
    assert long_context_loads({"long_contexts": {"rows": [{"press": "a", "load_s": 2.0}]}}) == {"a": 2.0}
    assert long_context_loads({}) is None
