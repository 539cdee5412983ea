"""Scores of ruler_quality's job rows: relative to uncompressed, with paired-bootstrap intervals.

Pure functions (no torch). A job row is one (press, ratio, document): its probes' answers, each
``correct`` or not, plus load time, peak memory growth and bytes. The uncompressed rows (press
``none``) are the ceiling (the embedded model is weak; RULER reports the same model's
uncompressed score beside every method's).

**The score** (``relative``) is the press's accuracy over the uncompressed accuracy on the same
probes: ``sum(press correct) / sum(uncompressed correct)`` over every probe of the documents the
press was run on (the issue's own measure: "24 of 90 questions where the uncompressed cache
answers 30"; KVzip's and kvpress's RULER tables compare accuracies the same way). Documents are
run in every (task, length) cell where uncompressed answers at least one probe
(``scored_cells``): a cell it never answers cannot show a loss.

Until 2026-12-07 the score was the share of the probes uncompressed answers that the press still
answers (now ``retained``). That conditions on the uncompressed answer being right, and a weak
model's greedy answers near its limit flip both ways under any perturbation: compactor at 0.1
lost 15 such probes and answered 19 that uncompressed missed on 220 documents, so the old score
read 0.97 for a press that answers as many questions as uncompressed (regression to the
mean: selecting on one noisy outcome makes the other look worse). ``lost`` / ``gained`` count
those flips; ``retained`` is still reported.

Interval: 95% paired bootstrap over documents (Efron & Tibshirani 1993, ch. 13; documents are
the resampled unit because the probes of one document share one compressed cache, so they are
not independent). Each resample draws documents with replacement and recomputes the ratio of
sums with the press and uncompressed read on the same resampled documents (paired). Percentile
interval, fixed seed.
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


def scored_cells(jobs: Iterable[dict[str, Any]], documents: Iterable[dict[str, Any]]) -> set[tuple[str, int]]:
    """``{(task, target_tokens)}`` where the uncompressed cache answers at least one probe: the
    cells a press is run on (every document of them, whatever uncompressed answered on it)."""
    docs = {d["doc_id"]: d for d in documents}
    return {(docs[j["doc_id"]]["task"], docs[j["doc_id"]]["target_tokens"]) for j in jobs
            if j["press"] == "none" and j["doc_id"] in docs and any(a["correct"] for a in j.get("answers", ()))}


def doc_counts(job: dict[str, Any], kept: dict[str, set[int]]) -> tuple[int, int]:
    """(correct, kept) over the kept probes of one job row: the pair behind ``retained``."""
    keep = kept.get(job["doc_id"], set())
    return sum(1 for a in job["answers"] if a["probe"] in keep and a["correct"]), len(keep)


def accuracy_pair(job: dict[str, Any], kept: dict[str, set[int]]) -> tuple[int, int]:
    """(press correct, uncompressed correct) over every probe of one job row: the pair behind
    ``relative``."""
    return sum(1 for a in job["answers"] if a["correct"]), len(kept.get(job["doc_id"], ()))


def flips(job: dict[str, Any], kept: dict[str, set[int]]) -> tuple[int, int]:
    """(lost, gained): probes uncompressed answers that the press misses, and the reverse."""
    keep = kept.get(job["doc_id"], set())
    right = {a["probe"] for a in job["answers"] if a["correct"]}
    return len(keep - right), len(right - keep)


def paired_bootstrap(pairs: list[tuple[int, int]], resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """(ratio, low, high) of ``sum(press) / sum(uncompressed)`` over documents ``pairs = [(press
    correct, uncompressed correct), ...]``, with the 95% percentile interval; Nones when the
    uncompressed side is 0. A resample whose uncompressed side is 0 counts as ratio 0."""
    if not sum(k for _, k in pairs):
        return None, None, None
    point = sum(c for c, _ in pairs) / sum(k for _, k in pairs)
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        draw = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        base = sum(k for _, k in draw)
        stats.append(sum(c for c, _ in draw) / base if base else 0.0)
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
    """One row per (press, ratio, split): the ratio to uncompressed (``relative``) with its
    interval over all ``families`` pooled, per family and per RULER length; ``kept_probes`` (the
    probes uncompressed answers: the ratio's denominator), ``probes`` (all scored), ``retained``
    with its interval, ``lost`` / ``gained`` flips; mean bytes vs none.
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
            pairs = [accuracy_pair(j, kept) for j in group]
            ratio_, low, high = paired_bootstrap(pairs)
            retained = paired_bootstrap([doc_counts(j, kept) for j in group])
            lost, gained = (sum(f) for f in zip(*(flips(j, kept) for j in group)))
            row = {"press": press, "compression_ratio": ratio, "split": split, "relative": ratio_,
                   "ci95": [low, high], "kept_probes": sum(k for _, k in pairs),
                   "probes": sum(len(j["answers"]) for j in group), "documents": len(group),
                   "retained": retained[0], "retained_ci95": list(retained[1:]), "lost": lost, "gained": gained,
                   "by_family": {}, "by_length": {}}
            for family in families:
                sub = [accuracy_pair(j, kept) for j in group if docs[j["doc_id"]]["family"] == family]
                r, lo, hi = paired_bootstrap(sub)
                row["by_family"][family] = {"relative": r, "ci95": [lo, hi], "kept_probes": sum(k for _, k in sub)}
            for length in sorted({docs[j["doc_id"]]["target_tokens"] for j in group
                                  if docs[j["doc_id"]]["family"] == "ruler"}):
                sub = [accuracy_pair(j, kept) for j in group if docs[j["doc_id"]]["family"] == "ruler"
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
