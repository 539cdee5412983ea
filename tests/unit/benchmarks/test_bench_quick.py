"""`kvfleet bench run --quick` end to end: starts Ray + the real app, runs every section with tiny
settings, and writes a result that matches the schema with sane numbers (not their values: speed
targets are benchmark results, not assertions)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _free_port(low: int = 8240, high: int = 8299) -> int:
    for port in range(low, high + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {low}-{high}")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "deployments.cli", "bench", "run", "--quick",
                           "--port", str(_free_port()), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"bench run --quick failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text()), out


def test_result_matches_schema(quick_result):
    from benchmarks.serving.schema import validate

    result, _ = quick_result
    validate(result)
    assert result["config"]["mode"] == "quick"
    assert set(result["section_seconds"]) >= {"engine", "serving"}


def test_quality_has_baseline_and_int8(quick_result):
    result, _ = quick_result
    rows = result["quality"]["accuracy"]
    assert {(r["press"], r["codec"]) for r in rows} >= {("none", "none"), ("knorm", "none")}
    if result["quality"]["int8_path"] is not None:
        assert any(r["codec"] == "int8" for r in rows)
    for job in result["quality"]["jobs"]:
        assert 0 < job["tokens_kept"] <= job["tokens_read"]
        assert job["bytes_stored"] > 0
        if "bytes_stored_int8" in job:  # int8 keys/values + a float32 scale per row: well under float32
            assert job["bytes_stored_int8"] < job["bytes_stored"]


def test_capacity_grows_with_ratio(quick_result):
    result, _ = quick_result
    rows = {(r["press"], r["compression_ratio"]): r for r in result["capacity"]["rows"]}
    base = rows[("none", 0.0)]
    for (press, ratio), row in rows.items():
        if ratio > 0:
            assert row["bytes_per_session"] < base["bytes_per_session"]
            assert row["sessions_held"] >= base["sessions_held"]


def test_latency_series_present(quick_result):
    result, _ = quick_result
    rows = result["latency"]["rows"]
    for series in ("session", "plain_full"):
        measured = [r for r in rows if r["series"] == series]
        assert measured and all(r["requests"] > 0 and r["ttft"]["median_s"] > 0 for r in measured)
        assert all(r["ttft"]["median_s"] <= r["total"]["median_s"] + 1e-9 for r in measured)
    prefix = [r for r in rows if r["series"] == "plain_prefix"]
    assert prefix and (result["latency"]["plain_prefix_wired"] or all(r["requests"] == 0 for r in prefix))


def test_migration_and_engine_numbers(quick_result):
    result, _ = quick_result
    for row in result["migration"]["rows"]:
        assert row["reprefill"]["median_s"] > 0
        for backend in result["migration"]["backends"]:
            assert row[backend]["n"] > 0 and row[backend]["median_s"] > 0
    engine = result["engine"]
    assert all(r["question_tokens"] > 5 for r in engine["ttft"])
    kept = {r["compression_ratio"]: r["bytes"] for r in engine["bytes"]}
    assert kept[0.5] < kept[0.0]


def test_plots_and_report_written(quick_result):
    from benchmarks.serving_report import main

    result, out = quick_result
    for name in ("accuracy", "ttft", "capacity", "latency", "migration"):
        assert out.with_name(f"{out.stem}_{name}.png").stat().st_size > 0
    assert "## Targets" in out.with_suffix(".md").read_text()
    assert main(["report", str(out)]) == 0
