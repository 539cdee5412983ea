"""benchmarks/ruler_quality.py as a user runs it: the --quick smoke run end to end (real model,
real decode loop; a harness check, not a quality assertion), resuming a run, and --merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.ruler_quality import configurations
from benchmarks.ruler_result import merge

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about a minute on an idle core; the shared machine can be 10x slower
def test_quick_run_scores_presses_against_uncompressed_and_resumes(tmp_path):
    out = tmp_path / "ruler.json"
    command = [sys.executable, "benchmarks/ruler_quality.py", "--quick", "--out", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    presses = {(j["press"], j["compression_ratio"]) for j in result["jobs"]}
    assert presses == {("none", 0.0), ("knorm", 0.5), ("streaming_llm", 0.5)}
    assert {d["family"] for d in result["documents"]} == {"ruler", "document", "chat"}
    for job in result["jobs"]:
        assert job["load_s"] > 0 and job["peak_growth_mib"] >= 0 and 0 < job["tokens_kept"] <= job["tokens_read"]
        assert all(isinstance(a["answer"], str) and a["answer"] for a in job["answers"])
    docs = {d["doc_id"]: (d["task"], d["target_tokens"]) for d in result["documents"]}
    none = [j for j in result["jobs"] if j["press"] == "none"]
    cells = {docs[j["doc_id"]] for j in none if any(a["correct"] for a in j["answers"])}
    scored = {j["doc_id"] for j in none if docs[j["doc_id"]] in cells}  # a document none missed in such a cell too
    assert {j["doc_id"] for j in result["jobs"] if j["press"] == "knorm"} == scored  # a cell none never answers: not run
    rows = {(r["press"], r["split"]): r for r in result["summary"]}
    for split in ("choose", "report", "all"):
        row = rows[("knorm", split)]
        assert row["kept_probes"] > 0 and row["ci95"][0] <= row["relative"] <= row["ci95"][1]
    assert result["default"]["press"] in {"knorm", "streaming_llm"} and result["default"]["held_back"]
    assert result["short_contexts"]["min_tokens"] > 0
    assert {c["target_tokens"] for c in result["load_costs"]} == {1024}
    assert out.with_suffix(".png").stat().st_size > 0
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(json.loads(out.read_text())["jobs"]) == len(result["jobs"])  # resumed: nothing re-run


def test_configurations_run_query_agnostic_presses_ratio_by_ratio_before_query_aware_ones():
    configs = configurations(["a", "aware", "b"], [0.5, 0.25], lambda p: p != "aware")
    assert configs == [("none", 0.0), ("a", 0.5), ("b", 0.5), ("a", 0.25), ("b", 0.25), ("aware", 0.5),
                       ("aware", 0.25)]


def _job(press, ratio, doc, correct):
    return {"press": press, "compression_ratio": ratio, "doc_id": doc, "bytes_stored": 10, "load_s": 1.0,
            "peak_growth_mib": 1.0, "tokens_read": 100, "tokens_kept": 50.0,
            "answers": [{"probe": 0, "answer": "x", "correct": correct}]}


def test_merge_unites_part_runs_and_keeps_the_first_copy_of_a_job(tmp_path):
    docs = [{"doc_id": f"d{s}", "family": "ruler", "task": "niah_single", "seed": s, "target_tokens": 1024,
             "probes": []} for s in range(2)]
    cost = {"press": "knorm", "compression_ratio": 0.5, "target_tokens": 1024, "load_s": 1.0}
    short = {"press": "streaming_llm", "compression_ratio": 0.5, "rows": [], "min_tokens": 64}
    a = {"documents": docs, "jobs": [_job("none", 0.0, "d0", True), _job("none", 0.0, "d1", True),
                                     _job("knorm", 0.5, "d0", True)], "cost_runs": [cost], "short_contexts": short}
    b = {"documents": docs[1:], "jobs": [_job("knorm", 0.5, "d0", False), _job("knorm", 0.5, "d1", False)],
         "cost_runs": [cost, {**cost, "target_tokens": 4096}], "short_contexts": {**short, "press": "knorm"}}
    parts = []
    for name, part in (("a", a), ("b", b)):
        parts.append(tmp_path / f"{name}.json")
        parts[-1].write_text(json.dumps(part))
    out = tmp_path / "merged.json"
    merge(parts, out)
    merged = json.loads(out.read_text())
    assert len(merged["jobs"]) == 4
    row = next(r for r in merged["summary"] if r["press"] == "knorm" and r["split"] == "all")
    assert row["relative"] == 0.5 and row["kept_probes"] == 2
    assert len(merged["cost_runs"]) == 2  # a part that copies another's cost rows does not repeat them
    assert merged["default"]["press"] == "knorm" and merged["short_contexts"]["press"] == "knorm"  # the chosen one's


def test_merging_a_merged_result_again_keeps_one_flat_list_of_part_runs(tmp_path):
    docs = [{"doc_id": "d0", "family": "ruler", "task": "niah_single", "seed": 0, "target_tokens": 1024, "probes": []}]
    run = {"config": {"seeds": [0]}, "started_unix_s": 1.0}
    a = {"documents": docs, "jobs": [_job("none", 0.0, "d0", True)], "config": {"seeds": [0]}, "runs": [run]}
    b = {"documents": docs, "jobs": [_job("knorm", 0.5, "d0", True)], "config": {"seeds": [0]},
         "runs": [{**run, "started_unix_s": 2.0}]}
    for name, part in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(part))
    once, twice = tmp_path / "once.json", tmp_path / "twice.json"
    merge([tmp_path / "a.json", tmp_path / "b.json"], once)
    merge([once, tmp_path / "b.json"], twice)
    parts = json.loads(twice.read_text())["parts"]
    assert [p["runs"][0]["started_unix_s"] for p in parts] == [1.0, 2.0]  # b once, nothing nested
    assert all("parts" not in p for p in parts)
