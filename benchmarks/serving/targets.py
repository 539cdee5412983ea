"""The issue-9 targets, checked against a result dict (``serving_report`` JSON).

1. Stored-session TTFT >= 10x faster than re-prefill at 4k context tokens.
2. Accuracy at ratio 0.5 >= 95 % of the uncompressed baseline for the best press.
3. Sessions held in a fixed budget >= 1/(1-r) x the uncompressed count, for every press x ratio.

Each check returns ``{"target", "measured", "met"}``; ``met`` is None when the data is missing
(e.g. a quick run without 4k contexts).
"""

from __future__ import annotations

from typing import Any

TTFT_SPEEDUP_X = 10.0
ACCURACY_FRACTION = 0.95
RATIO_FOR_ACCURACY = 0.5
LONG_CONTEXT_TOKENS = 4096


def _closest(rows: list[dict], key: str, value: float) -> dict | None:
    return min(rows, key=lambda r: abs(r[key] - value)) if rows else None


def ttft_target(result: dict[str, Any]) -> dict[str, Any]:
    measured: dict[str, Any] = {}
    engine = (result.get("engine") or {}).get("ttft") or []
    long_rows = [r for r in engine if r["target_tokens"] >= LONG_CONTEXT_TOKENS]
    if long_rows:
        row = long_rows[0]
        measured["engine_speedup_x"] = row["speedup_reprefill_over_stored_compressed"]["median_x"]
        measured["engine_context_tokens"] = row["context_tokens"]
    latency = [r for r in (result.get("latency") or {}).get("rows", [])
               if r["series"] == "session" and r["concurrency"] == 1
               and r["target_tokens"] >= LONG_CONTEXT_TOKENS]
    if latency:
        measured["serving_speedup_x"] = latency[0].get("plain_full_over_session_ttft_x")
        measured["serving_context_tokens"] = latency[0]["context_tokens"]
    values = [v for k, v in measured.items() if k.endswith("_x") and v is not None]
    return {"target": f"stored-session TTFT >= {TTFT_SPEEDUP_X:.0f}x faster than re-prefill at 4k tokens",
            "measured": measured, "met": all(v >= TTFT_SPEEDUP_X for v in values) if values else None}


def accuracy_target(result: dict[str, Any]) -> dict[str, Any]:
    rows = (result.get("quality") or {}).get("accuracy") or []
    out: dict[str, Any] = {"target": f"accuracy at ratio {RATIO_FOR_ACCURACY} >= {ACCURACY_FRACTION:.0%} of "
                                     "uncompressed for the best press", "measured": {}, "met": None}
    for codec in ("none", "int8"):
        base = next((r for r in rows if r["press"] == "none" and r["codec"] == codec), None)
        at = [r for r in rows if r["press"] != "none" and r["codec"] == codec
              and abs(r["compression_ratio"] - RATIO_FOR_ACCURACY) < 1e-9]
        if base is None or not at:
            continue
        best = max(at, key=lambda r: r["accuracy"])
        out["measured"][codec] = {"uncompressed_accuracy": base["accuracy"], "best_press": best["press"],
                                  "best_accuracy": best["accuracy"],
                                  "fraction": best["accuracy"] / base["accuracy"] if base["accuracy"] else None}
    fractions = [m["fraction"] for m in out["measured"].values() if m["fraction"] is not None]
    if "none" in out["measured"] and fractions:
        out["met"] = out["measured"]["none"]["fraction"] >= ACCURACY_FRACTION
    return out


def capacity_target(result: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in (result.get("capacity") or {}).get("rows", []) if r["press"] != "none"]
    failing = [f"{r['press']} r={r['compression_ratio']}" for r in rows if r.get("meets_goal") is False]
    return {"target": "sessions per budget >= 1/(1-r) x uncompressed (whole sessions: >= floor(n0/(1-r)))",
            "measured": {"configs": len(rows), "failing": failing,
                         "min_gain_over_goal": min((r["gain_vs_uncompressed"] / r["goal_gain"] for r in rows
                                                    if "gain_vs_uncompressed" in r), default=None)},
            "met": (not failing) if rows else None}


def check(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [ttft_target(result), accuracy_target(result), capacity_target(result)]
