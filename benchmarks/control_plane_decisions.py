"""Control-plane decision latency: place, locate, plan pressure migrations, tick, store writes.

A synthetic cluster of 8 replicas (GPU-like: device + host tiers) holds N sessions with random
sizes and idle times, fed in through pool events exactly as the Serve shell would. Each decision
is timed call by call with ``time.perf_counter_ns`` and reported as p50 / p99 / mean microseconds.

    python benchmarks/control_plane_decisions.py                     # 10k sessions, 8 replicas
    python benchmarks/control_plane_decisions.py --sessions 1000 10000 30000

Writes benchmarks/results/control_plane_decisions.json and .png (the first --sessions value is
the headline; the others give the scaling plot).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_plane import (  # noqa: E402
    ControlPlane, ControlPlaneConfig, MemorySessionStore, NodeId, ReplicaId, ReplicaStats, SessionContext,
    SQLiteSessionStore, Tier,
)
from control_plane.migration import plan_pressure_relief, plan_replica_death  # noqa: E402
from control_plane.placement import PlacementRequest, make_placement_policy  # noqa: E402

MiB = 1 << 20
RESULTS = REPO / "benchmarks" / "results"


def timed(fn: Callable[[int], Any], calls: int) -> dict[str, float]:
    """Call ``fn(i)`` ``calls`` times; latency percentiles in microseconds."""
    samples = []
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {"calls": calls, "p50_us": samples[len(samples) // 2], "p99_us": samples[int(len(samples) * 0.99) - 1],
            "mean_us": statistics.fmean(samples), "max_us": samples[-1]}


def build_cluster(sessions: int, replicas: int, seed: int, store=None) -> ControlPlane:
    """A ControlPlane with ``replicas`` replicas and ``sessions`` READY sessions (30 % shared contexts).

    Device capacity is sized so that the average replica sits at 80 %: six near 71 %, two near 107 %.
    """
    rng = random.Random(seed)
    config = ControlPlaneConfig(store="memory", placement_policy="power_of_two", placement_seed=seed,
                                pressure_threshold=0.9, pressure_target=0.8, default_ttl_s=3600)
    now = [0.0]
    cp = ControlPlane(config, store=store or MemorySessionStore(), clock=lambda: now[0])
    sizes = [rng.randint(1, 8) * MiB for _ in range(sessions)]
    capacity = int(sum(sizes) / replicas / 0.8)
    names = [ReplicaId(f"replica-{i}") for i in range(replicas)]
    for i, name in enumerate(names):
        cp.heartbeat(name, ReplicaStats(node=NodeId(f"node-{i // 2}"),
                                        capacity_bytes={Tier.DEVICE: capacity, Tier.HOST: 4 * capacity}))
    hot = set(names[:2])  # these two get 50 % more sessions: they end up over the threshold
    weights = [1.5 if n in hot else 1.0 for n in names]
    for i, size in enumerate(sizes):
        now[0] = rng.uniform(0, 3000)
        text = f"shared document {i % 300}" if i % 10 < 3 else f"document {i}"
        replica = rng.choices(names, weights)[0]
        record, _ = cp.open_session(model="bench", context=SessionContext(text=text), owner=f"key-{i % 50}")
        # Re-home to the weighted choice so the load is skewed on purpose (placement would balance it).
        cp.view.put_session(record.model_copy(update={"replica": replica}))
        cp.apply_pool_event(replica, {"kind": "stored", "handle": f"h{i}", "session_id": record.id,
                                      "tier": "device", "nbytes": size})
        cp.mark_loaded(record.id, read_tokens=4096, kept_tokens=2048, stored_bytes=size)
    now[0] = 3000.0
    return cp


def measure(sessions: int, replicas: int, seed: int, calls: int) -> dict[str, Any]:
    started = time.perf_counter()
    cp = build_cluster(sessions, replicas, seed)
    build_s = time.perf_counter() - started
    view, config = cp.view, cp.config
    ids = [r.id for r in view.sessions()]
    rng = random.Random(seed)
    results: dict[str, Any] = {"sessions": sessions, "replicas": replicas, "build_s": build_s,
                               "pressure": {r.replica_id: round(r.pressure(), 3) for r in view.replicas()}}
    for name in ("least_bytes", "power_of_two", "affinity"):
        policy = make_placement_policy(name, config, random.Random(seed))
        records = [view.session(rng.choice(ids)) for _ in range(calls)]
        requests = [PlacementRequest.for_record(r) for r in records]
        results[f"place_{name}"] = timed(lambda i: policy.place(requests[i], view), calls)
    probe = [rng.choice(ids) for _ in range(calls)]
    results["locate"] = timed(lambda i: cp.locate(probe[i]), calls)
    results["locate_no_touch"] = timed(lambda i: cp.locate(probe[i], touch=False), calls)
    plan_calls = max(5, calls // 100)
    plans = plan_pressure_relief(view, config)
    results["plan_pressure"] = {**timed(lambda i: plan_pressure_relief(view, config), plan_calls),
                                "plans": len(plans), "bytes_moved": sum(p.stored_bytes for p in plans)}
    view.mark_dead(ReplicaId("replica-7"))
    death = plan_replica_death(view, ReplicaId("replica-7"), config, limit=10**9)
    results["plan_replica_death"] = {**timed(lambda i: plan_replica_death(view, ReplicaId("replica-7"), config,
                                                                          limit=10**9), plan_calls),
                                     "plans": len(death), "orphaned_sessions": view.session_count(ReplicaId("replica-7"))}
    cp.heartbeat(ReplicaId("replica-7"), ReplicaStats(node=NodeId("node-3"), capacity_bytes={
        Tier.DEVICE: view.replica(ReplicaId("replica-6")).capacity_bytes.device}))
    cp.flush()
    results["tick"] = timed(lambda i: cp.tick(), plan_calls)
    return results


def measure_store(sessions: int, seed: int) -> dict[str, Any]:
    """SQLite: single upserts (each its own committed transaction), a bulk upsert, and a restart
    (a new ControlPlane loading every record)."""
    cp = build_cluster(sessions, 8, seed)
    records = list(cp.view.sessions())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cp.sqlite3"
        store = SQLiteSessionStore(path)
        single = timed(lambda i: store.upsert(records[i]), min(1000, len(records)))
        started = time.perf_counter()
        store.upsert_many(records[1000:])
        bulk_s = time.perf_counter() - started
        store.close()
        config = cp.config.model_copy(update={"store": "sqlite", "store_path": path})
        started = time.perf_counter()
        restarted = ControlPlane(config)
        restart_s = time.perf_counter() - started
        assert restarted.view.session_count() == len(records)
        restarted.close()
    return {"sessions": sessions, "sqlite_upsert": single, "sqlite_bulk_upsert_s": bulk_s,
            "sqlite_bulk_records": max(0, len(records) - 1000), "restart_recovery_s": restart_s}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    headline = results["runs"][0]
    names = ["place_least_bytes", "place_power_of_two", "place_affinity", "locate", "locate_no_touch",
             "plan_pressure", "plan_replica_death", "tick"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    p50 = [headline[n]["p50_us"] for n in names]
    p99 = [headline[n]["p99_us"] for n in names]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    left.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    left.set_yscale("log")
    left.set_xticks(list(xs), names, fontsize=8, rotation=30, ha="right")
    left.set_ylabel("latency per call (µs, log)")
    left.set_title(f"{headline['sessions']:,} sessions on {headline['replicas']} replicas")
    left.legend()
    runs = sorted(results["runs"], key=lambda r: r["sessions"])
    for name in ("place_power_of_two", "locate", "plan_pressure", "tick"):
        right.plot([r["sessions"] for r in runs], [r[name]["p50_us"] for r in runs], marker="o", label=name)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("sessions")
    right.set_ylabel("p50 latency (µs, log)")
    right.set_title("scaling with the number of sessions")
    right.legend(fontsize=8)
    fig.suptitle(f"kvfleet control plane decisions ({results['machine']['python']}, {results['machine']['cpu']})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10_000, 1_000, 30_000])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per fast decision")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "control_plane_decisions.json")
    args = parser.parse_args()
    runs = []
    for sessions in args.sessions:
        runs.append(measure(sessions, args.replicas, args.seed, args.calls))
        print(f"{sessions:>7} sessions: " + ", ".join(
            f"{k} p50 {v['p50_us']:.1f} µs" for k, v in runs[-1].items() if isinstance(v, dict) and "p50_us" in v))
    results = {
        "benchmark": "control_plane_decisions", "command": " ".join(["python", *sys.argv]),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "runs": runs, "store": measure_store(args.sessions[0], args.seed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.out.with_suffix(".png"))
    print(json.dumps(results["store"], indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
