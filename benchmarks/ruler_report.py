"""ruler_quality's result as Markdown tables (docs/presses.md) and a PNG (benchmarks/results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ci(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("relative") is None:
        return "-"
    low, high = cell["ci95"]
    return f"{cell['relative']:.2f} [{low:.2f}, {high:.2f}]"


def quality_table(result: dict[str, Any], split: str = "all") -> str:
    """Per press and ratio: accuracy relative to uncompressed [95% CI], pooled (with the probes
    uncompressed answers, and how many of those the press kept / lost / newly answered), per
    family and per length."""
    rows = [r for r in result["summary"] if r["split"] == split]
    lengths = sorted({int(k) for r in rows for k in r["by_length"]})
    head = ["press", "ratio", "all (uncompressed answers)", "retained / lost / gained", "RULER", "document", "chat",
            *[f"RULER {n // 1024}k" for n in lengths], "KV bytes vs none"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (not r.get("query_agnostic", True), r["compression_ratio"],
                                         -(r["relative"] or 0))):
        name = r["press"] + ("" if r.get("query_agnostic", True) else " (query-aware)")
        cells = [name, str(r["compression_ratio"]), f"{_ci(r)} ({r['kept_probes']})", _flips(r),
                 *[_ci(r["by_family"].get(f)) for f in ("ruler", "document", "chat")],
                 *[_ci(r["by_length"].get(str(n))) for n in lengths], f"{r.get('bytes_vs_none', float('nan')):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _flips(row: dict[str, Any]) -> str:
    if row.get("retained") is None:
        return "-"
    return f"{row['retained']:.2f} / {row['lost']} / {row['gained']}"


def load_table(result: dict[str, Any], ratio: float = 0.5) -> str:
    """Load time (vs none) and peak memory growth per press at each length, at ``ratio``: the
    paired cost runs (``--costs``) where measured, else the sweep's medians."""
    source = result.get("cost_runs") or result["load_costs"]
    rows = [r for r in source if r["press"] == "none" or abs(r["compression_ratio"] - ratio) < 1e-9]
    lengths = sorted({r["target_tokens"] for r in rows})
    head = ["press", *[f"{n // 1024}k: load s (vs none), peak MiB" for n in lengths]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(r["press"], r["target_tokens"]): r for r in rows}
    for press in sorted({r["press"] for r in rows}, key=lambda p: (p != "none", p)):
        cells = [press]
        for n in lengths:
            r = by.get((press, n))
            cells.append("-" if r is None else f"{r['load_s']:.1f} ({r['load_vs_none'] or 1.0:.1f}x), +{r['peak_growth_mib']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def default_text(result: dict[str, Any]) -> str:
    d = result.get("default")
    if not d:
        return "no default chosen (no query-agnostic press measured)"
    held = d.get("held_back") or {}
    held_text = (f"held-back half {held['relative']:.2f} of uncompressed, 95% CI [{held['ci95'][0]:.2f}, "
                 f"{held['ci95'][1]:.2f}] ({held['kept_probes']} probes answered uncompressed)") if held.get("relative") is not None \
        else "held-back half not measured"
    return (f"default: {d['press']} at {d['compression_ratio']} (min_tokens {d.get('min_tokens', '?')}); chosen on the "
            f"even seeds at {d['choose_relative']:.2f} (meets the 0.95 bar: {d['meets_bar']}); {held_text}")


def markdown(result: dict[str, Any]) -> str:
    kept = result.get("kept", {})
    kept_line = ", ".join(f"{k} {v['kept']}/{v['probes']}" for k, v in kept.get("task", {}).items())
    return "\n\n".join([default_text(result), f"probes answered uncompressed by task: {kept_line}",
                        "choose half (even seeds):", quality_table(result, "choose"),
                        "held-back half (odd seeds):", quality_table(result, "report"),
                        *[f"load at ratio {r}:\n\n{load_table(result, r)}" for r in _cost_ratios(result)]])


def _cost_ratios(result: dict[str, Any]) -> list[float]:
    """The compression ratios load costs were measured at (0.5 first: the table every press has)."""
    source = result.get("cost_runs") or result.get("load_costs") or []
    return sorted({r["compression_ratio"] for r in source if r["press"] != "none"}, key=lambda r: (r != 0.5, r))


def plot(result: dict[str, Any], path: Path) -> None:
    """Left: ratio to uncompressed vs compression ratio per query-agnostic press (95% CI bars);
    right: that ratio at 0.5 vs load time on the longest RULER documents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.get("summary", []) if r["split"] == "all" and r["relative"] is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    for press in sorted({r["press"] for r in rows if r.get("query_agnostic")}):
        line = sorted((r["compression_ratio"], r["relative"], r["ci95"]) for r in rows if r["press"] == press)
        xs, ys = [x for x, _, _ in line], [y for _, y, _ in line]
        err = [[y - ci[0] for _, y, ci in line], [ci[1] - y for _, y, ci in line]]
        left.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=press)
    left.axhline(0.95, color="k", linestyle="--", label="0.95 of uncompressed")
    left.set_xlabel("compression ratio")
    left.set_ylabel("accuracy / uncompressed accuracy (95% CI)")
    left.set_title("RULER-style suite + question sets (all seeds each press ran)")
    left.legend(fontsize=7)
    costs = result.get("load_costs", [])
    longest = max((c["target_tokens"] for c in costs), default=None)
    for r in rows:
        if abs(r["compression_ratio"] - 0.5) > 1e-9:
            continue
        cost = next((c for c in costs if c["press"] == r["press"] and c["target_tokens"] == longest
                     and abs(c["compression_ratio"] - 0.5) < 1e-9), None)
        if cost:
            right.scatter(cost["load_s"], r["relative"], marker="o" if r.get("query_agnostic") else "x")
            right.annotate(r["press"], (cost["load_s"], r["relative"]), fontsize=7, xytext=(3, 3),
                           textcoords="offset points")
    right.set_xlabel(f"median load s at {longest} tokens")
    right.set_ylabel("accuracy / uncompressed at r = 0.5")
    right.set_title("quality vs load cost (o query-agnostic, x query-aware)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
