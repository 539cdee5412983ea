"""Continuous batching (issue 13): aggregate decode tokens/s and inter-token latency over HTTP.

For each mode (``off``: ``batching.enabled=False``, one request per forward - the pre-batching
path; ``on``: the batched DecodeLoop), one replica (1 torch thread) is started and asked by
1, 2, 4, 8, 16 concurrent streams (greedy, ``ignore_eos``, ``--tokens`` tokens each):

- ``one_session``: every stream asks the same session (knorm 0.5);
- ``eight_sessions``: stream i asks session i % 8 (mixed presses: none, knorm, snapkv,
  streaming_llm, kvzip (per-head ragged), tova, expected_attention, knorm 0.25).

Reported per (mode, scenario, concurrency): aggregate tokens/s (all completion tokens / wall time
of the round), p50/p95 inter-token latency (gaps between a stream's content chunks), TTFT p50,
and ratios against the same run's single stream of the same mode and scenario; plus on/off.
Goals (issue 13, 2-core CPU): on-mode aggregate >= 2.5x single at 8 streams, >= 3x at 16; p50 ITL
at 8 streams <= 3.5x single.

    python benchmarks/batched_decode.py                       # ~10-15 min on the 2-core machine
    python benchmarks/batched_decode.py --modes on --concurrency 1 8 --tokens 16   # quick look

Writes benchmarks/results/batched_decode.json and .png (``--out`` to change). It starts its own
Ray cluster: run it on a quiet machine, with no other Ray cluster on it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402

from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.serving.app import bench_args, running_kvfleet  # noqa: E402
from benchmarks.serving.client import MODEL  # noqa: E402
from benchmarks.timing import percentile  # noqa: E402

PRESSES = [{"name": "knorm", "compression_ratio": 0.5}, {"name": "none"},
           {"name": "snapkv", "compression_ratio": 0.5}, {"name": "streaming_llm", "compression_ratio": 0.5},
           {"name": "kvzip", "compression_ratio": 0.5}, {"name": "tova", "compression_ratio": 0.5},
           {"name": "expected_attention", "compression_ratio": 0.5}, {"name": "knorm", "compression_ratio": 0.25}]
GOALS = {"aggregate_x_at_8": 2.5, "aggregate_x_at_16": 3.0, "p50_itl_x_at_8_max": 3.5}
FILLER = ("The committee discussed the annual budget, the new library wing and several unrelated matters. "
          "Minutes were taken and approved without changes. ")


def log(message: str) -> None:
    print(f"[batched_decode {time.strftime('%H:%M:%S')}] {message}", flush=True)


def context(i: int, repeats: int) -> str:
    facts = f"The secret code of vault {i} is {7000 + 37 * i}. Its keeper was born in city number {i}. "
    half = repeats // 2
    return FILLER * half + facts + FILLER * (repeats - half)


def stream_once(http: httpx.Client, session_id: str, question: str, tokens: int) -> dict[str, Any]:
    """One streamed greedy completion: chunk arrival times (s from send) and completion tokens."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": tokens, "ignore_eos": True, "stream": True, "session_id": session_id,
            "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    times, usage = [], {}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code >= 400:
            raise RuntimeError(f"{response.status_code}: {response.read()[:300]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                raise RuntimeError(event["error"])
            usage = event.get("usage") or usage
            if any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                times.append(time.perf_counter() - start)
    return {"chunk_s": times, "completion_tokens": int(usage.get("completion_tokens", 0)),
            "total_s": time.perf_counter() - start}


def run_round(base_url: str, sessions: list[str], concurrency: int, tokens: int) -> dict[str, Any]:
    questions = ["What is the secret code of the vault?", "Where was the keeper born?", "Summarize the minutes.",
                 "What did the committee discuss?"]
    with httpx.Client(base_url=base_url, timeout=900) as http:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            start = time.perf_counter()
            futures = [pool.submit(stream_once, http, sessions[i % len(sessions)], questions[i % len(questions)], tokens)
                       for i in range(concurrency)]
            streams = [f.result() for f in futures]
            wall = time.perf_counter() - start
    gaps = [b - a for s in streams for a, b in zip(s["chunk_s"], s["chunk_s"][1:])]
    total = sum(s["completion_tokens"] for s in streams)
    return {"concurrency": concurrency, "wall_s": round(wall, 3), "completion_tokens": total,
            "aggregate_tokens_per_s": round(total / wall, 3),
            "itl_p50_ms": round(1000 * percentile(gaps, 50), 2) if gaps else None,
            "itl_p95_ms": round(1000 * percentile(gaps, 95), 2) if gaps else None,
            "ttft_p50_ms": round(1000 * percentile([s["chunk_s"][0] for s in streams if s["chunk_s"]], 50), 1)}


def measure_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    app_args = bench_args(replicas=1)
    app_args["replicas"] = {**app_args["replicas"], "max_ongoing_requests": 64, "max_queued_requests": 128}
    app_args["batching"] = {"enabled": mode == "on"}
    out: dict[str, Any] = {"mode": mode, "scenarios": {}}
    with running_kvfleet(port=args.port, args=app_args) as target:
        sessions = []
        for i, press in enumerate(PRESSES):
            sessions.append(target.client.create_session(context(i, args.context_repeats), press)["id"])
        log(f"{mode}: {len(sessions)} sessions loaded")
        run_round(target.base_url, sessions[:1], 1, 4)  # warm-up
        for scenario, pool in (("one_session", sessions[:1]), ("eight_sessions", sessions)):
            rounds = []
            for c in args.concurrency:
                r = run_round(target.base_url, pool, c, args.tokens)
                log(f"{mode} {scenario} x{c}: {r['aggregate_tokens_per_s']} tok/s, ITL p50 {r['itl_p50_ms']} ms")
                rounds.append(r)
            single = next((r for r in rounds if r["concurrency"] == 1), None)
            for r in rounds:
                if single:
                    r["aggregate_x_single"] = round(r["aggregate_tokens_per_s"] / single["aggregate_tokens_per_s"], 3)
                    if r["itl_p50_ms"] and single["itl_p50_ms"]:
                        r["itl_p50_x_single"] = round(r["itl_p50_ms"] / single["itl_p50_ms"], 3)
            out["scenarios"][scenario] = rounds
        stats = target.client.http.get("/admin/stats").json()
        out["replica_batch_stats"] = {name: rep.get("batch") for name, rep in stats.get("replicas", {}).items()}
    return out


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    on = next((m for m in result["modes"] if m["mode"] == "on"), None)
    off = next((m for m in result["modes"] if m["mode"] == "off"), None)
    out: dict[str, Any] = {}
    if on is None:
        return out
    for scenario, rounds in on["scenarios"].items():
        by_c = {r["concurrency"]: r for r in rounds}
        v: dict[str, Any] = {}
        if 8 in by_c and "aggregate_x_single" in by_c[8]:
            v["aggregate_x_at_8"] = by_c[8]["aggregate_x_single"]
            v["p50_itl_x_at_8"] = by_c[8].get("itl_p50_x_single")
        if 16 in by_c and "aggregate_x_single" in by_c[16]:
            v["aggregate_x_at_16"] = by_c[16]["aggregate_x_single"]
        v["meets"] = {
            "aggregate_x_at_8": v.get("aggregate_x_at_8", 0) >= GOALS["aggregate_x_at_8"],
            "aggregate_x_at_16": v.get("aggregate_x_at_16", 0) >= GOALS["aggregate_x_at_16"],
            "p50_itl_x_at_8": (v.get("p50_itl_x_at_8") or 99) <= GOALS["p50_itl_x_at_8_max"]}
        if off is not None:
            off_by_c = {r["concurrency"]: r for r in off["scenarios"].get(scenario, [])}
            v["on_over_off"] = {c: round(by_c[c]["aggregate_tokens_per_s"] / off_by_c[c]["aggregate_tokens_per_s"], 3)
                                for c in by_c if c in off_by_c}
        out[scenario] = v
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m in result["modes"]:
        for scenario, rounds in m["scenarios"].items():
            cs = [r["concurrency"] for r in rounds]
            label = f"{m['mode']} / {scenario}"
            style = "-" if m["mode"] == "on" else "--"
            ax1.plot(cs, [r["aggregate_tokens_per_s"] for r in rounds], style, marker="o", label=label)
            ax2.plot(cs, [r["itl_p50_ms"] or 0 for r in rounds], style, marker="o", label=label)
    for ax, title in ((ax1, "aggregate decode tokens/s (HTTP)"), (ax2, "p50 inter-token latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle("kvfleet continuous batching, one replica, 1 torch thread (off = one request per forward)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--tokens", type=int, default=32, help="completion tokens per stream")
    parser.add_argument("--context-repeats", type=int, default=40, help="filler sentences (~30 tokens each)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KVFLEET_E2E_PORT", "8240")))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "batched_decode.json")
    args = parser.parse_args()
    started = time.perf_counter()
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"provenance": provenance({**config, "presses": PRESSES, "goals": GOALS}), "modes": []}
    for mode in args.modes:
        result["modes"].append(measure_mode(mode, args))
    result["verdicts"] = verdicts(result)
    finish(result, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}: {json.dumps(result['verdicts'])}")


if __name__ == "__main__":
    main()
