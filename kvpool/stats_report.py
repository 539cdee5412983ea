"""Render an access-statistics snapshot (``KVPool.stats_snapshot()``): a text table and a heatmap PNG."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kvpool.sizes import format_bytes

METRICS = ("bytes", "hits")


def format_table(snapshot: dict[str, Any], top: int = 20) -> str:
    """Tier usage, totals and the ``top`` sessions by bytes held, as fixed-width text."""
    lines = []
    for tier, usage in snapshot.get("tiers", {}).items():
        lines.append(f"{tier:>6}: {format_bytes(usage['held_bytes'])} held of {format_bytes(usage['budget_bytes'])}"
                     f" ({usage['entries']} entries, {format_bytes(usage['pinned_bytes'])} pinned)")
    totals = snapshot.get("totals", {})
    lines.append("events: " + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none")
                 + f"; hit rate {snapshot.get('hit_rate', 0.0):.1%}")
    now = snapshot.get("taken_at_s", time.time())
    sessions = sorted(snapshot.get("sessions", {}).items(), key=lambda item: -item[1]["bytes"])
    lines.append(f"{'session':<24} {'entries':>7} {'bytes':>11} {'hits':>6} {'last access':>12} {'layers':>6}")
    for session_id, data in sessions[:top]:
        last = f"{now - data['last_access_s']:.1f} s ago" if data["last_access_s"] else "never"
        lines.append(f"{session_id[:24]:<24} {data['entries']:>7} {format_bytes(data['bytes']):>11} "
                     f"{data['hits']:>6} {last:>12} {len(data['layers']):>6}")
    if len(sessions) > top:
        lines.append(f"... {len(sessions) - top} more sessions")
    return "\n".join(lines)


def heatmap_matrix(snapshot: dict[str, Any], metric: str = "bytes",
                   top: int = 40) -> tuple[list[str], list[list[float]]]:
    """Rows = the ``top`` sessions by bytes, columns = layers, cells = ``metric`` (bytes or hits)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    sessions = sorted(snapshot.get("sessions", {}).items(), key=lambda item: -item[1]["bytes"])[:top]
    width = max((len(data["layers"]) for _, data in sessions), default=0)
    rows = [[float(layer[metric]) for layer in data["layers"]] + [0.0] * (width - len(data["layers"]))
            for _, data in sessions]
    return [session_id for session_id, _ in sessions], rows


def write_heatmap(snapshot: dict[str, Any], path: Path, metric: str = "bytes", top: int = 40) -> Path:
    """Write a sessions x layers heatmap of ``metric`` to ``path`` (PNG, matplotlib Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, rows = heatmap_matrix(snapshot, metric, top)
    figure = Figure(figsize=(max(6.0, 0.25 * (len(rows[0]) if rows else 1) + 3), max(3.0, 0.3 * len(rows) + 1.5)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if rows and rows[0]:
        image = axes.imshow(rows, aspect="auto", cmap="viridis", interpolation="nearest")
        figure.colorbar(image, ax=axes, label=metric)
        axes.set_yticks(range(len(labels)), [label[:20] for label in labels], fontsize=7)
    else:
        axes.text(0.5, 0.5, "no sessions", ha="center", va="center")
    axes.set_xlabel("layer")
    axes.set_ylabel("session")
    axes.set_title(f"KV pool: {metric} per session and layer")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
