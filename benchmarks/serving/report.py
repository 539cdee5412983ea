"""Render a serving benchmark result (JSON) as Markdown: provenance, targets, one table per section."""

from __future__ import annotations

from typing import Any

from benchmarks.serving.targets import check


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _s(value: float | None, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _mib(nbytes: float | None) -> str | None:
    return None if nbytes is None else f"{nbytes / 2**20:.2f}"


def provenance_md(result: dict[str, Any]) -> str:
    m, v, g = result.get("machine", {}), result.get("versions", {}), result.get("git", {})
    mode = result.get("config", {}).get("mode")
    dirty = " (benchmarks dirty)" if g.get("benchmarks_dirty") else ""
    return (f"Run: mode **{mode}**, commit `{g.get('commit')}`{dirty}, "
            f"{result.get('runtime_s')} s. Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
            f"load average {m.get('load_average')} at start, {result.get('load_average_end')} at end. "
            f"Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))


def targets_md(result: dict[str, Any]) -> str:
    rows = []
    for t in check(result):
        met = {True: "met", False: "**not met**", None: "no data"}[t["met"]]
        rows.append([t["target"], ", ".join(f"{k}: {_fmt(val)}" for k, val in t["measured"].items()), met])
    return _table(["target", "measured", "result"], rows)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def quality_md(quality: dict[str, Any]) -> str:
    rows = quality.get("accuracy") or []
    ratios = sorted({r["compression_ratio"] for r in rows if r["press"] != "none"})
    out = []
    for codec in sorted({r["codec"] for r in rows}, key=["none", "int8"].index):
        base = next((r for r in rows if r["press"] == "none" and r["codec"] == codec), None)
        presses = list(dict.fromkeys(r["press"] for r in rows if r["press"] != "none"))
        body = []
        if base:
            body.append(["none (uncompressed)", *[f"{base['accuracy']:.2f}" for _ in ratios], base["questions"]])
        for label in presses:
            cells = []
            for ratio in ratios:
                hit = next((r for r in rows if r["press"] == label and r["codec"] == codec
                            and r["compression_ratio"] == ratio), None)
                cells.append(None if hit is None else f"{hit['accuracy']:.2f}")
            body.append([label, *cells, next(r["questions"] for r in rows if r["press"] == label)])
        out.append(f"Exact-match accuracy, codec **{codec}** (rows: press; columns: compression ratio)\n\n"
                   + _table(["press", *[f"r={r}" for r in ratios], "questions"], body))
    out.append(f"int8 path: {quality.get('int8_path')} ({quality.get('int8_note')})")
    return "\n\n".join(out)


def _hits(index: dict[str, int] | None) -> str | None:
    return None if index is None else f"{index['hits']}/{index['misses']}"


def latency_md(latency: dict[str, Any]) -> str:
    rows = []
    for r in latency.get("rows", []):
        rows.append([r["series"], r["context_tokens"], r["concurrency"], r["requests"], _s(r["ttft"]["median_s"]),
                     _s(r["ttft"]["p95_s"]), _s(r["decode_tokens_per_s"]["median_tok_s"], 1),
                     _s(r["request_tokens_per_s"]["median_tok_s"], 1),
                     _s(r.get("plain_full_over_session_ttft_x"), 1), _s(r.get("plain_prefix_over_session_ttft_x"), 1),
                     _hits(r.get("prefix_index"))])
    return (_table(["series", "context tokens", "clients", "requests", "TTFT p50 s", "TTFT p95 s",
                    "decode tok/s p50", "request tok/s p50", "plain_full/session TTFT x",
                    "plain_prefix/session TTFT x", "prefix index hits/misses"], rows)
            + f"\n\nplain_prefix: {latency.get('plain_prefix_note')}")


def capacity_md(capacity: dict[str, Any]) -> str:
    rows = []
    for r in capacity.get("rows", []):
        rows.append([r["press"], r["compression_ratio"], f"{r['context_tokens']:.0f}", f"{r['tokens_kept']:.0f}",
                     _mib(r["bytes_per_session"]), _mib(r.get("bytes_per_session_int8")), r["sessions_held"],
                     r.get("sessions_held_int8"), _s(r.get("gain_vs_uncompressed"), 2), _s(r["goal_gain"], 2),
                     r.get("meets_goal"), r["method"]])
    budget = capacity.get("budget_bytes", 0) / 2**30
    return (f"Budget {budget:g} GiB.\n\n"
            + _table(["press", "ratio", "context tokens", "kept tokens", "MiB/session", "MiB/session int8",
                      "sessions", "sessions int8", "gain", "goal 1/(1-r)", "meets goal", "method"], rows))


def migration_md(migration: dict[str, Any]) -> str:
    names = [*migration.get("backends", []), "admin_transfer", "reprefill"]
    rows = []
    for r in migration.get("rows", []):
        cells = []
        for name in names:
            cell = r.get(name)
            cells.append(None if not isinstance(cell, dict) or not cell["n"] else
                         f"{cell['median_s']:.3f} / {cell['p95_s']:.3f}")
        rows.append([r["context_tokens"], r["tokens_kept"], _mib(r["bytes"]), *cells])
    return (_table(["context tokens", "kept tokens", "MiB", *[f"{n} p50 / p95 s" for n in names]], rows)
            + f"\n\nbackends: {migration.get('backends_note')}; admin: {migration.get('admin_move_note')}; "
              f"reprefill measured as: {migration.get('reprefill_path')}")


def engine_md(engine: dict[str, Any]) -> str:
    rows = [[r["context_tokens"], r["question_tokens"], _s(r["stored_compressed"]["median_s"]),
             _s(r["stored_compressed"]["p95_s"]), _s(r["stored_full"]["median_s"]), _s(r["reprefill"]["median_s"]),
             _s(r["reprefill"]["p95_s"]), _s(r["speedup_reprefill_over_stored_compressed"]["median_x"], 1)]
            for r in engine.get("ttft", [])]
    out = [_table(["context tokens", "question tokens", "stored (pressed) p50 s", "p95 s", "stored (full) p50 s",
                   "re-prefill p50 s", "p95 s", "speedup x (paired median)"], rows)]
    if engine.get("reused_from"):
        git = engine.get("git") or {}
        out.append(f"Reused from `{engine['reused_from']}` (measured by `python benchmarks/engine_ttft.py` at "
                   f"commit {git.get('commit')}, load average {(engine.get('machine') or {}).get('load_average')}).")
    load = engine.get("model_load")
    if load:
        out.append(f"Model load: first (GGUF conversion) {load['first']['median_s']:.2f} s median, cached "
                   f"{load['cached']['median_s']:.2f} s median ({load['first']['n']} interleaved rounds).")
    return "\n\n".join(out)


def incidents_md(section: dict[str, Any]) -> str:
    """Retries after replica restarts and points that failed even after retrying (benchmarks/serving/retry.py)."""
    lines = []
    retries = section.get("retries") or []
    if retries:
        lines.append(f"Retried after a replica restart: {len(retries)} time(s) - "
                     + "; ".join(f"{r['what']} ({r['error'][:80]})" for r in retries[:6]))
    for failed in section.get("failed") or []:
        where = ", ".join(f"{k} {v}" for k, v in failed.items() if k != "error")
        lines.append(f"**Failed** ({where}): {failed['error'][:200]}")
    return "\n\n".join(lines)


def render(result: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    parts = ["# kvfleet serving benchmark", provenance_md(result), "## Targets", targets_md(result)]
    sections = (("engine", "Engine TTFT (no HTTP)", engine_md), ("quality", "Quality", quality_md),
                ("latency", "Latency (HTTP)", latency_md), ("capacity", "Memory / capacity", capacity_md),
                ("migration", "Migration", migration_md))
    for key, title, render_section in sections:
        if result.get(key):
            parts += [f"## {title}", render_section(result[key])]
            if result[key].get("retries") or result[key].get("failed"):
                parts.append(incidents_md(result[key]))
    return "\n\n".join(parts) + "\n"
