"""Which press the quality benchmark recommends, and from which context length.

Pure functions over press_quality's job rows, shared by the benchmark (which writes the ranking
into its JSON) and by the test that keeps ``AppConfig.default_press`` equal to the committed
benchmark's first choice.

Ranking rule at a ratio: only query-agnostic presses qualify (a session's questions are not known
when its context is loaded, so a press that scores against the end of the context keeps what the
*loading* text needed). Each press's score is its WORST accuracy relative to uncompressed over the
question sets (so no single task decides); ties go to the higher mean accuracy, then the shorter
load time on a long context (the long-context sweep, where measured), then on the benchmark's own.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean
from typing import Any, Mapping


def _query_agnostic(spec: dict) -> bool:
    from deployments.engine.presses import resolve
    from kvpool import PressSpec

    return resolve(PressSpec.model_validate(spec)).query_agnostic


def summarize(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (press, ratio): accuracy overall and per question set, relative to ``none``
    per set, mean bytes stored, mean load time and load time relative to ``none``."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for job in jobs:
        groups[(job["press"], job["compression_ratio"])].append(job)
    rows = []
    for (press, ratio), group in groups.items():
        by_set: dict[str, list[bool]] = defaultdict(list)
        for job in group:
            by_set[job["set"]].extend(a["correct"] for a in job["answers"])
        answers = [c for v in by_set.values() for c in v]
        rows.append({"press": press, "compression_ratio": ratio, "query_agnostic": _query_agnostic(group[0]["spec"]),
                     "questions": len(answers), "accuracy": round(sum(answers) / len(answers), 4),
                     "accuracy_by_set": {s: round(sum(v) / len(v), 4) for s, v in sorted(by_set.items())},
                     "bytes_stored": round(mean(j["bytes_stored"] for j in group)),
                     "tokens_kept": round(mean(j["tokens_kept"] for j in group), 1),
                     "load_s": round(mean(j["load_s"] for j in group), 3)})
    none = next((r for r in rows if r["press"] == "none"), None)
    for row in rows:
        if none is None:
            continue
        row["relative_by_set"] = {s: (round(a / none["accuracy_by_set"][s], 4) if none["accuracy_by_set"].get(s) else None)
                                  for s, a in row["accuracy_by_set"].items()}
        row["load_vs_none"] = round(row["load_s"] / none["load_s"], 2) if none["load_s"] else None
        row["bytes_vs_none"] = round(row["bytes_stored"] / none["bytes_stored"], 4)
    return sorted(rows, key=lambda r: (r["press"] != "none", r["press"], r["compression_ratio"]))


def rank_presses(summary: list[dict[str, Any]], ratio: float = 0.5,
                 long_loads: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Query-agnostic presses at ``ratio``, best first (see the module docstring for the rule).

    ``long_loads``: load seconds per press on a long context (``long_context_loads``); when given,
    ties on accuracy go to the faster long load (unmeasured presses after measured ones), since the
    short benchmark documents hide presses whose load cost grows faster than the context."""
    rows = [r for r in summary if r["press"] != "none" and r["query_agnostic"]
            and abs(r["compression_ratio"] - ratio) < 1e-9 and r.get("relative_by_set")]

    def worst(row: dict) -> float:
        return min((v for v in row["relative_by_set"].values() if v is not None), default=0.0)

    def long_load(row: dict) -> float:
        return 0.0 if long_loads is None else long_loads.get(row["press"], float("inf"))

    ranked = sorted(rows, key=lambda r: (-worst(r), -r["accuracy"], long_load(r), r["load_s"]))
    return [{"press": r["press"], "worst_relative": worst(r), "accuracy": r["accuracy"],
             "accuracy_by_set": r["accuracy_by_set"], "load_s": r["load_s"],
             **({"long_load_s": long_loads.get(r["press"])} if long_loads else {})} for r in ranked]


def long_context_loads(result: Mapping[str, Any]) -> dict[str, float] | None:
    """``{press: load seconds}`` from a result's long-context sweep, or None if it has none."""
    rows = (result.get("long_contexts") or {}).get("rows")
    return {row["press"]: row["load_s"] for row in rows if "load_s" in row} if rows else None


def choose_min_tokens(rows: list[dict[str, Any]], keep: float = 0.95) -> int:
    """Smallest measured context length (tokens read) from which the press keeps >= ``keep`` of
    uncompressed accuracy at that length and every longer one; ``rows``: short_context_sweep
    output. Returns the longest length + 1 when no length qualifies (nothing short is compressed)."""
    ordered = sorted(rows, key=lambda r: r["tokens_read"])
    choice = ordered[-1]["tokens_read"] + 1 if ordered else 0
    for row in reversed(ordered):
        if row["press"] + 1e-9 < keep * row["none"]:
            break
        choice = row["tokens_read"]
    return choice
