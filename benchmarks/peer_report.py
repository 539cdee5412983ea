"""The peer benchmark's pure part: per-server figures, kvfleet / llama.cpp ratios, the docs table.

``summarize(raw)`` turns benchmarks/peer_llamacpp.py's measurements (``raw[server]`` with
``decode`` rounds, the ``document`` cold / again asks and the ``turns``) into per-server figures
and the verdicts on the goals (issue 26): kvfleet's aggregate decode at 16 streams above
llama.cpp's, and its TTFT on a stored document (asked again) below. ``markdown_table(result)``
writes the table of docs/benchmarks.md. No server, no llama_cpp, no Ray: unit-tested on its own.
"""

from __future__ import annotations

import statistics
from typing import Any

GOALS = {"decode_at_16": "kvfleet aggregate decode tok/s at 16 streams > llama.cpp's",
         "ttft_stored": "kvfleet TTFT on a stored document (asked again) < llama.cpp's (prompt cache)"}
KV, PEER = "kvfleet", "llama.cpp"


def _server(measured: dict[str, Any]) -> dict[str, Any]:
    decode = {str(r["concurrency"]): r["aggregate_tokens_per_s"] for r in measured.get("decode", [])}
    document = measured.get("document") or {}
    later = [t["ttft_s"] for t in measured.get("turns", []) if t.get("round", 0) >= 1]
    return {"decode_tokens_per_s": decode,
            "ttft_cold_s": (document.get("cold") or {}).get("ttft_s"),
            "load_s": (document.get("cold") or {}).get("load_s"),
            "ttft_again_s": (document.get("again") or {}).get("ttft_s"),
            "ttft_turns_s": later,
            "ttft_turns_median_s": round(statistics.median(later), 4) if later else None}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def summarize(raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-server figures; ``ratios`` are kvfleet over llama.cpp for throughputs and llama.cpp over
    kvfleet for TTFTs (above 1 = kvfleet ahead); ``kvfleet_ahead`` the goals' verdicts (None when
    a figure is missing)."""
    servers = {name: _server(measured) for name, measured in raw.items()}
    out: dict[str, Any] = {"servers": servers}
    if KV not in servers or PEER not in servers:
        return {**out, "ratios": {}, "kvfleet_ahead": {}}
    kv, peer = servers[KV], servers[PEER]
    ratios = {f"decode_x_at_{c}": _ratio(kv["decode_tokens_per_s"].get(c), peer["decode_tokens_per_s"].get(c))
              for c in kv["decode_tokens_per_s"]}
    for key in ("ttft_cold_s", "ttft_again_s", "ttft_turns_median_s"):
        ratios[f"{key[:-2]}_x"] = _ratio(peer[key], kv[key])
    decode16 = ratios.get("decode_x_at_16")
    again = ratios.get("ttft_again_x")
    out["ratios"] = ratios
    out["kvfleet_ahead"] = {"decode_at_16": None if decode16 is None else decode16 > 1.0,
                            "ttft_stored": None if again is None else again > 1.0}
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def markdown_table(result: dict[str, Any]) -> str:
    """The docs table: one row per figure, kvfleet and llama.cpp side by side with the ratio."""
    summary = result["summary"]
    kv, peer = summary["servers"][KV], summary["servers"][PEER]
    ratios = summary["ratios"]
    rows = ["| | kvfleet | llama.cpp server | kvfleet ahead by |", "|---|---|---|---|"]
    for c in sorted(kv["decode_tokens_per_s"], key=int):
        label = "1 stream" if c == "1" else f"{c} concurrent streams"
        rows.append(f"| aggregate decode, {label} | {_fmt(kv['decode_tokens_per_s'][c], 'tok/s')} | "
                    f"{_fmt(peer['decode_tokens_per_s'].get(c), 'tok/s')} | {_x(ratios.get(f'decode_x_at_{c}'))} |")
    rows.append(f"| TTFT, ~3k-token document asked cold (kvfleet: session load {_fmt(kv['load_s'], 's')} "
                f"+ first question) | {_fmt(kv['ttft_cold_s'], 's')} | {_fmt(peer['ttft_cold_s'], 's')} | "
                f"{_x(ratios.get('ttft_cold_x'))} |")
    rows.append(f"| TTFT, same document asked again, new question | {_fmt(kv['ttft_again_s'], 's')} | "
                f"{_fmt(peer['ttft_again_s'], 's')} | {_x(ratios.get('ttft_again_x'))} |")
    rows.append(f"| TTFT, 3 documents asked in turn (median of {len(kv['ttft_turns_s'])}) | "
                f"{_fmt(kv['ttft_turns_median_s'], 's')} | {_fmt(peer['ttft_turns_median_s'], 's')} | "
                f"{_x(ratios.get('ttft_turns_median_x'))} |")
    return "\n".join(rows)
