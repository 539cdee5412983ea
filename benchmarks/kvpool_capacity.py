"""KV pool capacity and latency: sessions held in a fixed budget, get() per tier, prefix lookups.

Caches are shaped like the embedded model's (30 layers, 3 KV heads, head_dim 64, float32) over a
2k-token context; pruning at ratio r is simulated by keeping int(2048 * (1 - r)) tokens per head
(what kvpress's scorer presses keep), with random values.

1. Capacity: a real host-only KVPool with a fixed budget (default 512 MiB) is filled with sessions
   until its first eviction; reported: sessions held, bytes per session, gain over uncompressed,
   and the goal ``sessions(r) >= sessions(0) / (1 - r)``; with codec none and int8.
2. get() latency per tier (median / p90 over repeats): host (as stored, and int8 decoded), disk
   (read + CRC32 verify + unpack, with and without promotion), device when CUDA is present. Disk
   reads hit the OS page cache (files were just written): this is the software cost, not the
   drive's. Latencies are wall-clock on whatever else the machine runs: see the recorded load
   average before comparing runs.
3. Prefix-index lookup time vs prompt length (hit on the longest stored prefix, and a miss).

    python benchmarks/kvpool_capacity.py                      # 512 MiB, all ratios
    python benchmarks/kvpool_capacity.py --budget-mib 256 --repeats 5

Writes benchmarks/results/kvpool_capacity.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from kvpool import (CompressedPrefixIndex, EventKind, KVPool, KVPoolConfig, PressSpec, SessionId,  # noqa: E402
                    Tier, codecs)
from kvpool.synthetic import synthetic_kv  # noqa: E402

MiB = 1 << 20
RESULTS = REPO / "benchmarks" / "results"
MODEL_SHAPE = {"num_layers": 30, "num_kv_heads": 3, "head_dim": 64, "dtype": torch.float32}
CONTEXT_TOKENS = 2048
RATIOS = (0.0, 0.25, 0.5, 0.75)
CODECS = ("none", "int8")


def model_cache(ratio: float, seed: int = 0):
    return synthetic_kv(original_tokens=CONTEXT_TOKENS, compression_ratio=ratio, seed=seed, **MODEL_SHAPE)


def summarize(samples_ms: list[float]) -> dict[str, float]:
    """Median / p90 / mean of millisecond samples."""
    samples = sorted(samples_ms)
    return {"repeats": len(samples), "median_ms": statistics.median(samples),
            "p90_ms": samples[min(len(samples) - 1, int(len(samples) * 0.9))], "mean_ms": statistics.fmean(samples)}


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Latency summary of ``repeats`` calls of ``fn``."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return summarize(samples)


def measure_capacity(budget_bytes: int) -> list[dict[str, Any]]:
    """Fill a host pool until the first eviction, for every ratio and codec."""
    rows = []
    for codec in CODECS:
        for ratio in RATIOS:
            ckv = model_cache(ratio)
            pool = KVPool(KVPoolConfig(host_budget_bytes=budget_bytes, default_codec=codec))
            evicted = []
            pool.subscribe(lambda event: evicted.append(event) if event.kind is EventKind.EVICTED else None)
            for i in range(10_000):
                pool.put(ckv, SessionId(f"s{i}"))
                if evicted:
                    break
            held, entry_bytes = len(pool), pool.usage()["host"]["held_bytes"] // len(pool)
            pool.close()
            rows.append({"codec": codec, "compression_ratio": ratio, "sessions_held": held,
                         "bytes_per_session": entry_bytes, "kept_tokens_per_head": int(ckv.meta.kept_tokens)})
            print(f"capacity codec={codec:<4} r={ratio:.2f}: {held:3d} sessions of {entry_bytes / MiB:6.1f} MiB")
    base = next(r["sessions_held"] for r in rows if r["codec"] == "none" and r["compression_ratio"] == 0.0)
    for row in rows:
        row["gain_vs_uncompressed"] = row["sessions_held"] / base
        row["goal_gain"] = 1 / (1 - row["compression_ratio"])
        row["meets_goal"] = row["sessions_held"] >= base / (1 - row["compression_ratio"])
    return rows


def measure_get_latency(repeats: int, work_dir: Path) -> list[dict[str, Any]]:
    """get() per tier and ratio, one entry per tier (budgets of exactly one entry each). Pure reads
    use promote=False; ``disk_get_promote`` is a get that promotes the disk entry to the fastest
    tier, each faster entry moving one tier down (a swap chain)."""
    rows = []
    cuda = torch.cuda.is_available()
    for ratio in RATIOS:
        for codec in CODECS:
            unit = codecs.encode(model_cache(ratio), codec).nbytes
            config = KVPoolConfig(host_budget_bytes=unit, disk_dir=work_dir / f"{codec}-{ratio}",
                                  disk_budget_bytes=unit, default_codec=codec,
                                  device="cuda" if cuda else None, device_budget_bytes=unit if cuda else 0)
            with KVPool(config) as pool:
                handles = [pool.put(model_cache(ratio, seed), SessionId(f"s{seed}")) for seed in range(len(pool.tiers))]
                row: dict[str, Any] = {"compression_ratio": ratio, "codec": codec, "entry_bytes": unit}
                for handle in handles:
                    tier = pool.info(handle).tier
                    row[f"{tier}_get"] = timed(lambda: pool.get(handle, promote=False), repeats)
                    if codec != "none":
                        row[f"{tier}_get_decoded"] = timed(lambda: pool.get(handle, promote=False, decoded=True),
                                                           repeats)
                samples = []
                for _ in range(repeats):
                    cold = next(h for h in handles if pool.info(h).tier is Tier.DISK)
                    start = time.perf_counter_ns()
                    pool.get(cold)
                    samples.append((time.perf_counter_ns() - start) / 1e6)
                row["disk_get_promote"] = summarize(samples)
                pool.audit()
            rows.append(row)
            print(f"get r={ratio:.2f} codec={codec:<4} ({unit / MiB:5.1f} MiB): "
                  + ", ".join(f"{k} {v['median_ms']:.3f} ms" for k, v in row.items() if isinstance(v, dict)))
    return rows


def measure_prefix_lookup(lengths: list[int], repeats: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Lookup time of the longest stored prefix (entries at 1/4, 1/2, 3/4 of each length) and of a miss."""
    press = PressSpec(name="knorm", compression_ratio=0.5)
    rng = random.Random(0)
    prompt = tuple(rng.randrange(32_000) for _ in range(max(lengths)))
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 40))
    index = CompressedPrefixIndex(pool, block_tokens=16)
    tiny = {"num_layers": 1, "num_kv_heads": 1, "head_dim": 4}
    for length in lengths:
        for part in (length // 4, length // 2, 3 * length // 4):
            ckv = synthetic_kv(original_tokens=part, token_ids=prompt[:part], press=press, **tiny)
            index.insert(pool.put(ckv, SessionId(f"p{part}")))
    rows = []
    for length in lengths:
        query = prompt[:length]
        missing = (prompt[0] + 1,) + prompt[1:length]
        hit = index.lookup("synthetic-model", press, query)
        rows.append({"prompt_tokens": length, "blocks": length // 16, "hit_prefix_tokens": hit.prefix_tokens,
                     "hit": timed(lambda: index.lookup("synthetic-model", press, query), repeats),
                     "miss": timed(lambda: index.lookup("synthetic-model", press, missing), repeats)})
        print(f"prefix lookup {length:6d} tokens: hit {rows[-1]['hit']['median_ms']:.3f} ms "
              f"(prefix {hit.prefix_tokens}), miss {rows[-1]['miss']['median_ms']:.3f} ms")
    stats = index.stats()
    pool.close()
    return rows, stats


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 4.8))
    FigureCanvasAgg(figure)
    cap, lat, pre = figure.subplots(1, 3)
    width = 0.38
    for offset, codec in ((-width / 2, "none"), (width / 2, "int8")):
        rows = [r for r in results["capacity"] if r["codec"] == codec]
        cap.bar([i + offset for i in range(len(rows))], [r["sessions_held"] for r in rows], width,
                label=f"codec {codec}")
    base = next(r["sessions_held"] for r in results["capacity"] if r["codec"] == "none" and r["compression_ratio"] == 0)
    cap.plot(range(len(RATIOS)), [base / (1 - r) for r in RATIOS], "k--", marker="o", label="goal sessions(0)/(1-r)")
    cap.set_xticks(range(len(RATIOS)), [f"r={r}" for r in RATIOS])
    cap.set_ylabel(f"sessions held in {results['budget_mib']} MiB")
    cap.set_title("Capacity (30 layers x 3 heads x 64, fp32, 2k ctx)")
    cap.legend(fontsize=8)

    keys = ("device_get", "device_get_decoded", "host_get", "host_get_decoded", "disk_get", "disk_get_decoded",
            "disk_get_promote")
    for key in keys:
        for codec, style in (("none", "-"), ("int8", ":")):
            rows = [r for r in results["get_latency"] if r["codec"] == codec and key in r]
            if not rows:
                continue
            lat.plot([r["compression_ratio"] for r in rows], [r[key]["median_ms"] for r in rows], style, marker="o",
                     label=f"{key} ({codec})")
    lat.set_yscale("log")
    lat.set_xlabel("compression ratio")
    lat.set_ylabel("get() median latency (ms, log)")
    lat.set_title("get() latency per tier")
    lat.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(0.0, 0.3))

    rows = results["prefix_lookup"]
    for case, marker in (("hit", "o"), ("miss", "s")):
        pre.plot([r["prompt_tokens"] for r in rows], [r[case]["median_ms"] * 1000 for r in rows], marker=marker,
                 label=case)
    pre.set_xscale("log", base=2)
    pre.set_yscale("log")
    pre.set_xlabel("prompt tokens (block 16)")
    pre.set_ylabel("lookup median (us, log: slope 1 = linear in blocks)")
    pre.set_title("Prefix-index lookup vs prompt length")
    pre.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-mib", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15, help="get() repeats per tier")
    parser.add_argument("--lookup-repeats", type=int, default=200)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192, 16384, 32768])
    parser.add_argument("--out", type=Path, default=RESULTS / "kvpool_capacity.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    started = time.time()
    capacity = measure_capacity(args.budget_mib * MiB)
    with tempfile.TemporaryDirectory(prefix="kvpool-bench-") as work_dir:
        latency = measure_get_latency(args.repeats, Path(work_dir))
    lookup, index_stats = measure_prefix_lookup(args.lengths, args.lookup_repeats)
    results = {
        "benchmark": "kvpool_capacity", "budget_mib": args.budget_mib, "context_tokens": CONTEXT_TOKENS,
        "cache_shape": {k: str(v) if k == "dtype" else v for k, v in MODEL_SHAPE.items()},
        "capacity": capacity, "get_latency": latency, "prefix_lookup": lookup, "prefix_index_stats": index_stats,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                        "commit": _commit(), "seconds": round(time.time() - started, 1),
                        "load_average_1m_at_end": os.getloadavg()[0], "cpu_count": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


if __name__ == "__main__":
    main()
