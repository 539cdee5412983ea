"""benchmarks/press_quality.py as a user runs it: the --quick smoke run end to end (real model,
a long-context load in its own process), and --merge of part runs (the committed result is one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.press_quality import merge

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_quick_run_ranks_presses_and_measures_short_and_long_contexts(tmp_path):
    out = tmp_path / "quality.json"
    proc = subprocess.run([sys.executable, "benchmarks/press_quality.py", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {(r["press"], r["compression_ratio"]) for r in result["summary"]} == {("none", 0.0), ("knorm", 0.5),
                                                                                 ("kvzip", 0.5)}
    assert {r["press"] for r in result["ranking_at_0.5"]} == {"knorm", "kvzip"}
    long = {row["press"]: row for row in result["long_contexts"]["rows"]}
    top = result["ranking_at_0.5"][0]["press"]
    assert set(long) == {"none", top} and long[top]["tokens_read"] > 500 and long[top]["load_s"] > 0
    assert result["short_contexts"]["press"] == top and result["short_contexts"]["min_tokens"] > 0
    assert out.with_suffix(".png").stat().st_size > 0


def _job(press: str, ratio: float, set_name: str, correct: int, load_s: float) -> dict:
    spec = {"name": "none"} if press == "none" else {"name": press, "compression_ratio": ratio}
    return {"press": press, "compression_ratio": ratio, "spec": spec, "doc_id": f"{set_name}-0", "set": set_name,
            "bytes_stored": 100, "tokens_kept": 10.0, "load_s": load_s,
            "answers": [{"correct": i < correct} for i in range(5)]}


def _part(path: Path, jobs: list[dict], **extra) -> Path:
    documents = [{"doc_id": "d"}] if jobs else []
    path.write_text(json.dumps({"benchmark": "press_quality", "config": {}, "documents": documents, "jobs": jobs,
                                **extra}))
    return path


def test_merge_breaks_accuracy_ties_by_long_load_and_keeps_the_winners_short_sweep(tmp_path):
    jobs = [_job(p, r, s, c, t) for p, r, c, t in (("none", 0.0, 4, 1.0), ("kvzip", 0.5, 4, 3.0),
                                                  ("kvgrad", 0.5, 4, 6.0)) for s in ("document", "chat")]
    parts = [_part(tmp_path / "a.json", jobs[:4], short_contexts={"press": "kvzip", "rows": [], "min_tokens": 100}),
             _part(tmp_path / "b.json", jobs[4:]),
             _part(tmp_path / "short.json", [], short_contexts={"press": "kvgrad", "rows": [], "min_tokens": 200}),
             _part(tmp_path / "long.json", [], long_contexts={"rows": [{"press": "kvzip", "load_s": 90.0},
                                                                       {"press": "kvgrad", "load_s": 80.0}]})]
    out = tmp_path / "merged.json"
    merge(parts, out)
    merged = json.loads(out.read_text())
    assert [r["press"] for r in merged["ranking_at_0.5"]] == ["kvgrad", "kvzip"]  # tie on accuracy: 80 s < 90 s
    assert merged["short_contexts"]["press"] == "kvgrad" and merged["short_contexts"]["min_tokens"] == 200
