"""Scores of ruler_quality's job rows: relative to uncompressed, with paired-bootstrap intervals.

Pure functions (no torch). A job row is one (press, ratio, document): its probes' answers, each
``correct`` or not, plus load time, peak memory growth and bytes. The uncompressed rows (press
``none``) decide which probes count: only probes the model answers uncompressed are **kept**
(the embedded model is weak; RULER reports the same model's uncompressed score as the ceiling).
On kept probes uncompressed scores 1 by construction, so a press's score there IS its ratio to
uncompressed.

Interval: 95% paired bootstrap over documents (Efron & Tibshirani 1993, ch. 13; documents are
the resampled unit because the probes of one document share one compressed cache, so they are
not independent). Each resample draws documents with replacement and recomputes
``sum(press correct on kept probes) / sum(kept probes)``; both cached and uncompressed are read
on the same resampled documents (paired). Percentile interval, fixed seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from statistics import median
from typing import Any, Iterable

BOOTSTRAP_RESAMPLES = 2000


def kept_probes(jobs: Iterable[dict[str, Any]]) -> dict[str, set[int]]:
    """``{doc_id: probe indices the uncompressed cache answers}`` from the ``none`` rows."""
    return {j["doc_id"]: {a["probe"] for a in j["answers"] if a["correct"]} for j in jobs if j["press"] == "none"}


def doc_counts(job: dict[str, Any], kept: dict[str, set[int]]) -> tuple[int, int]:
    """(correct, kept) over the kept probes of one job row."""
    keep = kept.get(job["doc_id"], set())
    return sum(1 for a in job["answers"] if a["probe"] in keep and a["correct"]), len(keep)


def paired_bootstrap(pairs: list[tuple[int, int]], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """(ratio, low, high) of ``sum(correct) / sum(kept)`` over documents ``pairs = [(correct,
    kept), ...]``, with the 95% percentile interval; Nones when nothing is kept."""
    pairs = [p for p in pairs if p[1] > 0]
    if not pairs:
        return None, None, None
    point = sum(c for c, _ in pairs) / sum(k for _, k in pairs)
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        draw = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        stats.append(sum(c for c, _ in draw) / sum(k for _, k in draw))
    stats.sort()
    return round(point, 4), round(stats[int(0.025 * resamples)], 4), round(stats[int(0.975 * resamples) - 1], 4)


def _group(jobs: list[dict], docs: dict[str, dict], key) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for job in jobs:
        if job["press"] != "none" and "error" not in job:
            groups[(job["press"], job["compression_ratio"], *key(docs[job["doc_id"]]))].append(job)
    return groups


def summarize(jobs: list[dict[str, Any]], documents: list[dict[str, Any]], splits: dict[int, str],
              families: tuple[str, ...] = ("ruler", "document", "chat")) -> list[dict[str, Any]]:
    """One row per (press, ratio, split): the ratio to uncompressed with its interval over all
    ``families`` pooled, per family and per RULER length; kept probes; mean bytes vs none.
    ``splits``: seed -> split name (benchmarks.ruler.split_of), plus ``all``."""
    docs = {d["doc_id"]: d for d in documents}
    kept = kept_probes(jobs)
    none_bytes = {j["doc_id"]: j["bytes_stored"] for j in jobs if j["press"] == "none"}
    rows = []
    for split in sorted({*splits.values(), "all"}):
        def in_split(doc: dict) -> bool:
            return split == "all" or splits.get(doc["seed"]) == split
        for (press, ratio), group in _group(jobs, docs, lambda d: ()).items():
            group = [j for j in group if in_split(docs[j["doc_id"]]) and docs[j["doc_id"]]["family"] in families]
            if not group:
                continue
            pairs = [doc_counts(j, kept) for j in group]
            ratio_, low, high = paired_bootstrap(pairs)
            row = {"press": press, "compression_ratio": ratio, "split": split, "relative": ratio_,
                   "ci95": [low, high], "kept_probes": sum(k for _, k in pairs), "documents": len(group),
                   "by_family": {}, "by_length": {}}
            for family in families:
                sub = [doc_counts(j, kept) for j in group if docs[j["doc_id"]]["family"] == family]
                r, lo, hi = paired_bootstrap(sub)
                row["by_family"][family] = {"relative": r, "ci95": [lo, hi], "kept_probes": sum(k for _, k in sub)}
            for length in sorted({docs[j["doc_id"]]["target_tokens"] for j in group
                                  if docs[j["doc_id"]]["family"] == "ruler"}):
                sub = [doc_counts(j, kept) for j in group if docs[j["doc_id"]]["family"] == "ruler"
                       and docs[j["doc_id"]]["target_tokens"] == length]
                r, lo, hi = paired_bootstrap(sub)
                row["by_length"][str(length)] = {"relative": r, "ci95": [lo, hi], "kept_probes": sum(k for _, k in sub)}
            shared = [j for j in group if j["doc_id"] in none_bytes]
            if shared:
                row["bytes_vs_none"] = round(sum(j["bytes_stored"] for j in shared)
                                             / sum(none_bytes[j["doc_id"]] for j in shared), 4)
            rows.append(row)
    return sorted(rows, key=lambda r: (r["split"], r["press"], r["compression_ratio"]))


def load_costs(jobs: list[dict[str, Any]], documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median load seconds and peak memory growth (MiB) per (press, ratio, RULER length), with
    the load time relative to ``none`` on the same documents."""
    docs = {d["doc_id"]: d for d in documents}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for job in jobs:
        doc = docs[job["doc_id"]]
        if doc["family"] == "ruler" and "error" not in job:
            groups[(job["press"], job["compression_ratio"], doc["target_tokens"])].append(job)
    none = {length: median(j["load_s"] for j in g) for (p, _, length), g in groups.items() if p == "none"}
    rows = []
    for (press, ratio, length), group in sorted(groups.items()):
        load = median(j["load_s"] for j in group)
        rows.append({"press": press, "compression_ratio": ratio, "target_tokens": length, "documents": len(group),
                     "load_s": round(load, 3), "load_vs_none": round(load / none[length], 2) if none.get(length) else None,
                     "peak_growth_mib": round(max(j["peak_growth_mib"] for j in group))})
    return rows


def kept_counts(jobs: list[dict[str, Any]], documents: list[dict[str, Any]]) -> dict[str, Any]:
    """How many probes the uncompressed cache answered (kept) out of all, per family / task / length."""
    docs = {d["doc_id"]: d for d in documents}
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for job in jobs:
        if job["press"] != "none":
            continue
        doc = docs[job["doc_id"]]
        for label, value in (("family", doc["family"]), ("task", doc["task"]),
                             ("length", str(doc["target_tokens"]))):
            out[label][value][0] += sum(a["correct"] for a in job["answers"])
            out[label][value][1] += len(job["answers"])
    return {label: {k: {"kept": v[0], "probes": v[1]} for k, v in sorted(d.items())} for label, d in out.items()}
