"""benchmarks/kvzip_scoring.py and benchmarks/join_ttft.py as a user runs them (small sizes): they
finish, write JSON + PNG, and what they measure is what kvfleet runs (harness checks, no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(tmp_path: Path, script: str, *args: str) -> dict:
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, script, *args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.with_suffix(".png").stat().st_size > 0
    return json.loads(out.read_text())


def test_kvzip_scoring_compares_kvpress_and_the_blocked_scoring(tmp_path):
    result = run(tmp_path, "benchmarks/kvzip_scoring.py", "--tokens", "96", "--blocks", "16", "64", "--rounds", "1")
    rows = result["rows"]
    assert {(r["dtype"], r["method"], r["block"]) for r in rows} == {
        (d, "kvpress", None) for d in ("bfloat16", "float32")} | {
        (d, "blocked", b) for d in ("bfloat16", "float32") for b in (16, 64)}
    assert all(r["ms_per_layer"] > 0 for r in rows)
    assert all(r["error"] < 1e-5 for r in rows if r["dtype"] == "float32")  # both exact in float32


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_join_ttft_times_the_three_variants_on_a_stored_cache(tmp_path):
    result = run(tmp_path, "benchmarks/join_ttft.py", "--tokens", "400", "--rounds", "1")
    assert [r["variant"] for r in result["rows"]] == ["transformers", "gqa", "gqa+adopt"]
    assert all(len(r["ttft_ms"]) == 1 and r["ttft_median_ms"] > 0 for r in result["rows"])
    config = result["provenance"]["config"]
    assert config["question_tokens"] > 0 and 0 < config["kept_tokens"] <= config["context_tokens"]
