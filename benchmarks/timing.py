"""Summaries of timing samples, and interleaved repetition of compared variants.

On a shared machine, comparing variants measured minutes apart measures the neighbours. Always
interleave: ``interleaved({"a": fa, "b": fb}, repeats)`` runs a, b, a, b, ... (the order rotates
each round) so that slow phases hit every variant alike; then compare medians or per-round ratios.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of a non-empty list; ValueError if empty."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(samples: list[float], unit: str = "s") -> dict[str, Any]:
    """``{"n", "median_<unit>", "p95_<unit>", "mean_<unit>", "min_<unit>", "max_<unit>"}``; n=0 gives Nones."""
    if not samples:
        return {"n": 0, f"median_{unit}": None, f"p95_{unit}": None, f"mean_{unit}": None,
                f"min_{unit}": None, f"max_{unit}": None}
    return {"n": len(samples), f"median_{unit}": statistics.median(samples), f"p95_{unit}": percentile(samples, 95),
            f"mean_{unit}": statistics.fmean(samples), f"min_{unit}": min(samples), f"max_{unit}": max(samples)}


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int,
                progress: Callable[[str], None] | None = None,
                calls_per_round: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Wall seconds of every call, ``repeats`` rounds interleaved with a rotating order.

    ``calls_per_round``: calls of a variant in each round (default 1): cheap variants can take
    several samples per round next to one sample of an expensive one. Samples of round ``i`` are
    ``samples[name][i * k:(i + 1) * k]``.
    """
    names = list(variants)
    calls = {name: (calls_per_round or {}).get(name, 1) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            for _ in range(calls[name]):
                start = time.perf_counter()
                variants[name]()
                samples[name].append(time.perf_counter() - start)
                if progress:
                    progress(f"round {round_index + 1}/{repeats} {name}: {samples[name][-1]:.3f} s")
    return samples


def round_medians(samples: list[float], calls: int) -> list[float]:
    """Median of each round's ``calls`` consecutive samples (see ``interleaved``)."""
    return [statistics.median(samples[i:i + calls]) for i in range(0, len(samples), calls)]


def paired_ratios(slow: list[float], fast: list[float]) -> list[float]:
    """Per-round ``slow[i] / fast[i]`` (rounds are interleaved, so each pair shares its noise)."""
    return [s / f for s, f in zip(slow, fast) if f > 0]
