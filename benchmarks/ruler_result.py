"""The result file of benchmarks/ruler_quality.py: resume it, recompute its summary and default
choice from the raw jobs, and merge part runs into one.

``finish`` is the one place a result's ``summary`` (benchmarks/ruler_stats.py), ``load_costs``,
``kept`` counts and ``default`` (benchmarks/default_choice.py) are derived; ``merge`` unites part
runs (jobs keyed by press, ratio and document: the first part's copy wins) and keeps one flat
list of the runs they came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.press_grid import press_spec
from benchmarks.ruler import SuiteDocument, split_of


def query_agnostic(label: str) -> bool:
    """Whether kvfleet's catalog entry for press ``label`` scores without the question."""
    from deployments.engine.presses import resolve
    from kvpool import PressSpec

    return resolve(PressSpec.model_validate(press_spec(label, 0.5))).query_agnostic


def load_result(out: Path, docs: list[SuiteDocument]) -> dict[str, Any]:
    """The result in ``out`` with ``docs`` added (resume / append); SystemExit if a document id
    there holds other probes than now (the generators changed: start a new file)."""
    result = json.loads(out.read_text()) if out.exists() else {"benchmark": "ruler_quality", "jobs": [], "documents": []}
    known = {d["doc_id"]: d for d in result["documents"]}
    for doc in docs:
        data = json.loads(json.dumps(doc.to_json()))  # tuples as JSON lists, as stored
        if doc.doc_id in known and known[doc.doc_id]["probes"] != data["probes"]:
            raise SystemExit(f"{out} holds another {doc.doc_id}; the generators changed - use a new --out")
        known.setdefault(doc.doc_id, data)
    result["documents"] = list(known.values())
    return result


def finish(result: dict[str, Any], out: Path) -> None:
    """Recompute the summary, load costs and default choice from the jobs; write JSON (+ PNG)."""
    from benchmarks import default_choice, ruler_stats

    docs = result["documents"]
    splits = {d["seed"]: split_of(d["seed"]) for d in docs}
    summary = ruler_stats.summarize(result["jobs"], docs, splits)
    agnostic = {row["press"]: query_agnostic(row["press"]) for row in summary}
    for row in summary:
        row["query_agnostic"] = agnostic[row["press"]]
    result["summary"] = summary
    result["load_costs"] = ruler_stats.load_costs(result["jobs"], docs)
    result["kept"] = ruler_stats.kept_counts(result["jobs"], docs)
    choice = default_choice.choose_default(summary, tie_break_costs(result))
    if choice:
        choice["held_back"] = default_choice.held_back(summary, choice["press"], choice["compression_ratio"])
        short = result.get("short_contexts")
        if short and (short["press"], short["compression_ratio"]) == (choice["press"], choice["compression_ratio"]):
            choice["min_tokens"] = short["min_tokens"]
    result["default"] = choice
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)


def tie_break_costs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Load costs that break accuracy ties: the paired cost runs where measured, else the sweep's."""
    return result.get("cost_runs") or result.get("load_costs") or []


def merge(parts: list[Path], out: Path) -> None:
    """One result from part runs: documents and jobs united (a key measured twice: the first part's),
    cost runs united without repeats, and the short-context sweep of the press the merged result
    chooses (else the first part's)."""
    result: dict[str, Any] = {"benchmark": "ruler_quality", "documents": [], "jobs": [], "parts": []}
    docs, keys, shorts = {}, set(), []
    for path in parts:
        part = json.loads(path.read_text())
        for d in part["documents"]:
            docs.setdefault(d["doc_id"], d)
        for job in part["jobs"]:
            key = (job["press"], job["compression_ratio"], job["doc_id"])
            if key not in keys:
                keys.add(key)
                result["jobs"].append(job)
        result["parts"] += [p for p in _provenance_of(path, part) if p not in result["parts"]]
        result["cost_runs"] = result.get("cost_runs", []) + [
            c for c in part.get("cost_runs", []) if c not in result.get("cost_runs", [])]
        if part.get("short_contexts"):
            shorts.append(part["short_contexts"])
        if part.get("config"):
            result.setdefault("config", part["config"])
    result["documents"] = list(docs.values())
    if shorts:
        result["short_contexts"] = shorts[0]
    finish(result, out)
    choice = result.get("default") or {}
    chosen = [s for s in shorts if (s["press"], s["compression_ratio"]) == (choice.get("press"), choice.get("compression_ratio"))]
    if chosen and chosen[0] is not result["short_contexts"]:
        result["short_contexts"] = chosen[0]
        finish(result, out)


def _provenance_of(path: Path, part: dict[str, Any]) -> list[dict[str, Any]]:
    """``{path, config, runs}`` of ``part`` and, for a merged part, of the parts it was merged from:
    one flat list, so merging a merged result again does not nest (the file grew to 2 MB that way)."""
    nested = part.get("parts") or []
    flat = [{"path": str(path), "config": part.get("config"), "runs": part.get("runs")}] if part.get("runs") or not nested else []
    for inner in nested:
        flat.extend(_provenance_of(Path(inner["path"]), inner))
    return flat
