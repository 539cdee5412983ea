"""Per-load statistics of presses that report them (``get_stats()``, e.g. ``moe_router``), and
the replica-level totals built from them.

- ``load_stats(press, layers)``: after a prefill, the ``get_stats()`` of the first press in the
  press tree that has one (the press itself or a wrapped one), with each layer's ``tokens_kept``
  replaced by what the stored cache really holds per head (a wrapper such as ``adakv`` decides
  the kept counts, not the inner press). ``{}`` when no press reports statistics. The engine puts
  it in ``CompressedKV.meta.press_stats`` and the session view serves it as ``press_stats``.
- ``PressStatsTotals``: a replica's running totals over loads (loads, loads per router type,
  loads cache_aware raised, the mean requested and applied ratio, each expert's share of
  (layer, head) routing weight), for ``/admin/stats`` and ``/metrics``
  (deployments/ingress/observability/press_metrics.py).
- ``set_pool_pressure(press, pressure)``: hands the replica's KV pool pressure to every press in
  the tree that reads it (``cache_aware``); ``wants_pool_pressure(spec)`` says whether a load needs
  it and ``pool_pressure_of(tiers)`` computes it from ``KVPool.usage()``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

_INNER = ("press", "base_press", "prefilling_press", "decoding_press")


def press_tree(press: Any) -> Iterator[Any]:
    """``press`` and every press it wraps, depth first (kvpress wrapper fields)."""
    if press is None:
        return
    yield press
    for name in _INNER:
        inner = getattr(press, name, None)
        if inner is not None and not isinstance(inner, (str, bool, int, float)):
            yield from press_tree(inner)
    for inner in getattr(press, "presses", None) or ():
        yield from press_tree(inner)


def set_pool_pressure(press: Any, pressure: float | None) -> None:
    """Set ``pool_pressure`` (bytes held / byte budget of the KV pool, [0, 1]) on the presses that have it."""
    for node in press_tree(press):
        if hasattr(node, "pool_pressure") and hasattr(node, "cache_aware"):
            node.pool_pressure = pressure


def load_stats(press: Any, layers: tuple) -> dict:
    """The statistics of one load (see the module docstring); ``layers``: the stored LayerKVs."""
    reporter = next((node for node in press_tree(press) if callable(getattr(node, "get_stats", None))), None)
    if reporter is None:
        return {}
    stats = reporter.get_stats()
    for row in stats.get("layer_stats", []):
        layer = layers[row["layer"]]
        heads = len(row["tokens_kept"])
        row["tokens_kept"] = (list(layer.head_lengths) if layer.head_lengths is not None
                              else [int(layer.keys.shape[1])] * heads)
    return stats


@dataclass
class PressStatsTotals:
    """Running totals over a replica's loads with press statistics; ``add(stats)`` per load,
    ``snapshot()`` -> JSON for ``/admin/stats`` (``press_stats``) and the metrics exporter."""

    loads: int = 0
    ratio_requested_sum: float = 0.0
    ratio_applied_sum: float = 0.0
    cache_aware_raised: int = 0
    expert_weight: Counter = field(default_factory=Counter)
    router_types: Counter = field(default_factory=Counter)

    def add(self, stats: dict) -> None:
        if not stats:
            return
        self.loads += 1
        requested, applied = stats.get("compression_ratio_requested") or 0.0, stats.get("compression_ratio_applied") or 0.0
        self.ratio_requested_sum += requested
        self.ratio_applied_sum += applied
        self.cache_aware_raised += int(applied > requested)
        self.router_types[stats.get("router_type", "")] += 1
        for name, share in (stats.get("expert_share") or {}).items():
            self.expert_weight[name] += share

    def snapshot(self) -> dict:
        n = max(self.loads, 1)
        return {"loads": self.loads, "mean_ratio_requested": round(self.ratio_requested_sum / n, 4),
                "mean_ratio_applied": round(self.ratio_applied_sum / n, 4),
                "cache_aware_raised_loads": self.cache_aware_raised,
                "router_types": dict(self.router_types),
                "expert_share": {k: round(v / n, 4) for k, v in sorted(self.expert_weight.items())}}


def wants_pool_pressure(spec: dict) -> bool:
    """Whether a PressSpec JSON (``{"name", "kwargs", "presses", ...}`` or the flat form) asks for
    ``cache_aware`` anywhere in its tree: only then does a load need the pool's pressure."""
    if not isinstance(spec, dict):
        return False
    if spec.get("cache_aware") is True or (spec.get("kwargs") or {}).get("cache_aware") is True:
        return True
    return any(wants_pool_pressure(inner) for inner in spec.get("presses") or ())


def pool_pressure_of(tiers: dict[str, dict[str, int]]) -> float | None:
    """Pressure of the tier new caches land in: ``held_bytes / budget_bytes`` of the first tier with a
    budget in KVPool.usage() order (accelerator, else host memory); None if no tier has one."""
    for usage in tiers.values():
        budget = usage.get("budget_bytes") or 0
        if budget > 0:
            return min(1.0, usage.get("held_bytes", 0) / budget)
    return None
