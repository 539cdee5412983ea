"""Which press, ratio and ``min_tokens`` the product uses by default, decided on half the seeds.

Pure functions over benchmarks/results/ruler_quality.json (its ``summary``, ``load_costs`` and
``short_contexts``), shared by the benchmark (which writes the choice into its JSON) and by
tests/unit/benchmarks/test_default_press.py (which keeps every compressing default in AppConfig
equal to it).

The rule, on the ``choose`` half (even seeds) only - the ``report`` half (odd seeds) is read
after the choice, never during it:

1. Only query-agnostic presses qualify (a session's questions are not known when its context is
   loaded, and a plain request's compressed prefix is reused by later prompts), and only
   configurations measured on every choose-half document any configuration was measured on
   (like for like: a press run on the 1k documents only does not compete with one run at 4k too).
2. A press's score at a ratio is its ratio to uncompressed on the kept probes of all families
   pooled (RULER suite + the document and chat question sets).
3. The default ratio is the HIGHEST measured ratio at which a press is near-lossless on the
   choose half: its 95% interval's LOWER end >= ``bar`` (0.95) - the same test docs apply before
   calling a press near-lossless (``near_lossless``). Of the presses that clear it there, the
   best score wins; ties go to the faster median load on the longest RULER length. If no ratio
   has such a press, the lowest measured ratio's best press is chosen (the least loss on offer)
   and the choice says ``meets_bar: false``.
   (Until 2026-12-06 the rule read the point score, not the interval: it chose kvzip at 0.5 at
   0.97 [0.88, 1.00] on the choose half, which kept 0.89 [0.81, 0.97] on the held-back half. A
   point score on ~34 probes does not separate 0.89 from 0.97; the interval does.)
4. ``min_tokens``: press_ranking.choose_min_tokens on the short-context sweep's choose-half rows.

``near_lossless(row)`` is the one test docs may use for that word: the held-back interval's lower
end clears the bar.
"""

from __future__ import annotations

from typing import Any, Mapping

BAR = 0.95


def _rows(summary: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    rows = [r for r in summary if r["split"] == split and r.get("query_agnostic") and r["relative"] is not None]
    full = max((r["documents"] for r in rows), default=0)
    return [r for r in rows if r["documents"] == full]


def _load_at_longest(load_costs: list[dict[str, Any]], press: str, ratio: float) -> float:
    """Load seconds of ``press`` on the longest measured length: at ``ratio`` where measured, else
    at any ratio (a press's scoring pass reads the whole context whatever it keeps)."""
    rows = [r for r in load_costs if r["press"] == press]
    rows = [r for r in rows if abs(r["compression_ratio"] - ratio) < 1e-9] or rows
    return max(rows, key=lambda r: r["target_tokens"])["load_s"] if rows else float("inf")


def best_at(summary: list[dict[str, Any]], load_costs: list[dict[str, Any]], ratio: float,
            split: str = "choose") -> list[dict[str, Any]]:
    """Query-agnostic rows of ``split`` at ``ratio``, best first (score, then faster long load)."""
    rows = [r for r in _rows(summary, split) if abs(r["compression_ratio"] - ratio) < 1e-9]
    return sorted(rows, key=lambda r: (-r["relative"], _load_at_longest(load_costs, r["press"], ratio), r["press"]))


def choose_default(summary: list[dict[str, Any]], load_costs: list[dict[str, Any]],
                   bar: float = BAR) -> dict[str, Any] | None:
    """``{press, compression_ratio, choose_relative, choose_ci95, meets_bar}`` by the module's
    rule, or None when nothing query-agnostic was measured."""
    ratios = sorted({r["compression_ratio"] for r in _rows(summary, "choose")}, reverse=True)
    if not ratios:
        return None
    for ratio in ratios:
        cleared = [r for r in best_at(summary, load_costs, ratio) if near_lossless(r, bar)]
        if cleared:
            return _choice(cleared[0], True)
    return _choice(best_at(summary, load_costs, ratios[-1])[0], False)


def _choice(row: Mapping[str, Any], meets_bar: bool) -> dict[str, Any]:
    return {"press": row["press"], "compression_ratio": row["compression_ratio"],
            "choose_relative": row["relative"], "choose_ci95": row["ci95"], "meets_bar": meets_bar}


def held_back(summary: list[dict[str, Any]], press: str, ratio: float) -> dict[str, Any] | None:
    """The ``report`` half's row of (press, ratio): the score the choice never saw."""
    return next((r for r in summary if r["split"] == "report" and r["press"] == press
                 and abs(r["compression_ratio"] - ratio) < 1e-9), None)


def near_lossless(row: Mapping[str, Any] | None, bar: float = BAR) -> bool:
    """True only if the row's 95% interval lies at or above ``bar`` (its lower end clears it)."""
    return bool(row) and row["ci95"][0] is not None and row["ci95"][0] >= bar
