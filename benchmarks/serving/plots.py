"""PNG plots of a serving benchmark result; one figure per question, written next to the JSON.

- ``<stem>_accuracy.png``: exact-match accuracy vs compression ratio per press (codec none, int8).
- ``<stem>_ttft.png``: TTFT of a stored session vs re-prefill vs context length (serving, engine).
- ``<stem>_capacity.png``: sessions held in the budget vs ratio per press, with the 1/(1-r) goal.
- ``<stem>_latency.png``: TTFT p50/p95 and decode tokens/s vs concurrent clients.
- ``<stem>_migration.png``: time to move a session per backend vs admin move vs re-prefill.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _figure(width: float, height: float, columns: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, columns)
    return figure, (axes if columns > 1 else [axes])


def _presses(rows: list[dict]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        if row["press"] != "none" and row["press"] not in seen:
            seen.append(row["press"])
    return seen


def accuracy(result: dict[str, Any], path: Path) -> bool:
    rows = (result.get("quality") or {}).get("accuracy") or []
    if not rows:
        return False
    codecs = [c for c in ("none", "int8") if any(r["codec"] == c for r in rows)]
    figure, axes = _figure(7 * len(codecs), 4.8, len(codecs))
    for ax, codec in zip(axes, codecs):
        base = next((r["accuracy"] for r in rows if r["press"] == "none" and r["codec"] == codec), None)
        for label in _presses(rows):
            sub = sorted((r for r in rows if r["press"] == label and r["codec"] == codec),
                         key=lambda r: r["compression_ratio"])
            xs = ([0.0] if base is not None else []) + [r["compression_ratio"] for r in sub]
            ys = ([base] if base is not None else []) + [r["accuracy"] for r in sub]
            ax.plot(xs, ys, marker="o", label=label)
        if base is not None:
            ax.axhline(base, color="k", linewidth=0.8, label=f"uncompressed {base:.2f}")
            ax.axhline(0.95 * base, color="k", linestyle="--", linewidth=0.8, label="95 % of uncompressed")
        questions = next((r["questions"] for r in rows if r["codec"] == codec), 0)
        ax.set_title(f"Exact-match accuracy, codec {codec} ({questions} questions per point)")
        ax.set_xlabel("compression ratio")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def ttft(result: dict[str, Any], path: Path) -> bool:
    serving = [r for r in (result.get("latency") or {}).get("rows", []) if r["concurrency"] == 1]
    engine = (result.get("engine") or {}).get("ttft") or []
    if not serving and not engine:
        return False
    figure, (ax,) = _figure(7.5, 4.8, 1)
    for series, marker in (("session", "o"), ("plain_full", "s"), ("plain_prefix", "^")):
        sub = sorted((r for r in serving if r["series"] == series and r["ttft"]["n"]),
                     key=lambda r: r["context_tokens"])
        if sub:
            ax.plot([r["context_tokens"] for r in sub], [r["ttft"]["median_s"] for r in sub], marker=marker,
                    label=f"HTTP {series} (median)")
    for name, marker in (("stored_compressed", "o"), ("reprefill", "s")):
        if engine:
            ax.plot([r["context_tokens"] for r in engine], [r[name]["median_s"] for r in engine], marker=marker,
                    linestyle=":", label=f"engine {name} (median)")
    ax.set_yscale("log")
    ax.set_xlabel("context tokens")
    ax.set_ylabel("time to first token (s, log)")
    ax.set_title("TTFT: stored session vs re-prefill")
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def capacity(result: dict[str, Any], path: Path) -> bool:
    rows = (result.get("capacity") or {}).get("rows") or []
    base = next((r for r in rows if r["press"] == "none"), None)
    if not rows or base is None:
        return False
    figure, (ax,) = _figure(7.5, 4.8, 1)
    ratios = sorted({r["compression_ratio"] for r in rows})
    for label in _presses(rows):
        sub = sorted((r for r in rows if r["press"] == label), key=lambda r: r["compression_ratio"])
        line, = ax.plot([0.0] + [r["compression_ratio"] for r in sub],
                        [base["sessions_held"]] + [r["sessions_held"] for r in sub], marker="o", label=label)
        if sub[0].get("sessions_held_int8") is not None:
            ax.plot([0.0] + [r["compression_ratio"] for r in sub],
                    [base["sessions_held_int8"]] + [r["sessions_held_int8"] for r in sub], ":",
                    color=line.get_color())
    ax.plot(ratios, [base["sessions_held"] / (1 - r) for r in ratios], "k--", label="goal n0 / (1 - r)")
    ax.set_yscale("log")
    budget = (result.get("capacity") or {}).get("budget_bytes", 0) / 2**30
    ax.set_title(f"Sessions held in {budget:g} GiB ({base['context_tokens']:.0f}-token contexts; dotted: int8)")
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("sessions (log)")
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def latency(result: dict[str, Any], path: Path) -> bool:
    rows = (result.get("latency") or {}).get("rows") or []
    shortest = min((r["target_tokens"] for r in rows), default=None)
    rows = [r for r in rows if r["target_tokens"] == shortest and r["ttft"]["n"]]
    if not rows:
        return False
    figure, (ttft_ax, rate_ax) = _figure(14, 4.8, 2)
    for series, marker in (("session", "o"), ("plain_full", "s"), ("plain_prefix", "^")):
        sub = sorted((r for r in rows if r["series"] == series), key=lambda r: r["concurrency"])
        if not sub:
            continue
        xs = [r["concurrency"] for r in sub]
        line, = ttft_ax.plot(xs, [r["ttft"]["median_s"] for r in sub], marker=marker, label=f"{series} p50")
        ttft_ax.plot(xs, [r["ttft"]["p95_s"] for r in sub], marker=marker, linestyle="--", color=line.get_color(),
                     label=f"{series} p95")
        rate_ax.plot(xs, [r["decode_tokens_per_s"]["median_tok_s"] for r in sub], marker=marker,
                     label=f"{series} decode tok/s per request (p50)")
    for ax in (ttft_ax, rate_ax):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.legend(fontsize=7)
    ttft_ax.set_yscale("log")
    ttft_ax.set_ylabel("TTFT (s, log)")
    ttft_ax.set_title(f"TTFT vs concurrency (~{shortest}-token contexts)")
    rate_ax.set_ylabel("tokens/s")
    rate_ax.set_title("Decode rate per request vs concurrency")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def migration(result: dict[str, Any], path: Path) -> bool:
    rows = (result.get("migration") or {}).get("rows") or []
    if not rows:
        return False
    names = [n for n in (*result["migration"].get("backends", []), "admin_transfer", "reprefill")
             if any(isinstance(r.get(n), dict) and r[n]["n"] for r in rows)]
    figure, (ax,) = _figure(8, 4.8, 1)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ax.bar([j + i * width for j in range(len(rows))], [r[name]["median_s"] for r in rows], width, label=name)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(rows))],
                  [f"{r['context_tokens']} tokens\n{r['bytes'] / 2**20:.0f} MiB" for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, log)")
    ax.set_title("Moving a session vs rebuilding it")
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


PLOTS: dict[str, Callable[[dict[str, Any], Path], bool]] = {
    "accuracy": accuracy, "ttft": ttft, "capacity": capacity, "latency": latency, "migration": migration}


def write_all(result: dict[str, Any], json_path: Path) -> list[Path]:
    """Write every plot the result has data for; returns the paths written."""
    written = []
    for name, draw in PLOTS.items():
        path = json_path.with_name(f"{json_path.stem}_{name}.png")
        if draw(result, path):
            written.append(path)
    return written
