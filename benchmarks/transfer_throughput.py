"""Transfer throughput per backend vs the raw copy of the same bytes, 1 MiB - 512 MiB.

Runs a simulated two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, nodes
tagged ``node_a``/``node_b``). Each backend moves a synthetic session shaped like the embedded
model's cache from an actor on node A to an actor on node B (``local``: to a second actor on
node A); the target's import hook only counts bytes, so a measurement covers the whole ticket:
describe, prepare, the data path, arrival, crc32 verification and commit. Raw baselines move the
same number of bytes in the same run (benchmarks/transfer_baselines.py).

Each point: one cold transfer (pools fill, pairs form), then the median of ``--repeats`` warm
ones. Writes benchmarks/results/transfer_throughput.json and .png.

    python benchmarks/transfer_throughput.py                     # 1..512 MiB, all backends
    python benchmarks/transfer_throughput.py --sizes-mib 1 64 --repeats 2
    python benchmarks/transfer_throughput.py --sizes-mib --reprefill \
        --out benchmarks/results/transfer_migrate_vs_reprefill.json  # migrate vs re-prefill, 4k tokens
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.transfer_baselines import RawPeer, raw_gloo_s, raw_object_store_s  # noqa: E402
from transfer import make_backend, start_transfer  # noqa: E402
from transfer.testing import EndpointActor, tokens_for_bytes  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = ("nixl", "collective", "object_store", "local")
RAW_OF = {"nixl": "nixl_write", "collective": "gloo", "object_store": "object_store", "local": "memcpy"}
MIB = 1 << 20


def start_cluster() -> Cluster:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"node_a": 1}, "object_store_memory": 2 << 30, "include_dashboard": False})
    cluster.add_node(num_cpus=2, resources={"node_b": 1}, object_store_memory=2 << 30)
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def _point(nbytes: int, runs: list[float]) -> dict[str, Any]:
    warm = runs[1:] or runs
    median, best = statistics.median(warm), min(warm)
    return {"nbytes": nbytes, "cold_s": runs[0], "warm_median_s": median, "warm_best_s": best, "runs_s": runs,
            "gbytes_per_s": nbytes / median / 1e9, "best_gbytes_per_s": nbytes / best / 1e9}


def _ratio(point: dict[str, Any], raw: dict[str, Any], key: str) -> float:
    """Backend throughput / raw throughput (per byte, so payload sizes may differ slightly)."""
    return round(raw[key] / point[key] * point["nbytes"] / raw["nbytes"], 3)


def measure_backend(name: str, source: Any, target: Any, nbytes_goal: int, repeats: int) -> dict[str, Any]:
    """Cold + ``repeats`` warm transfers of a ~``nbytes_goal`` session; times from the tickets."""
    key = f"bench-{name}-{nbytes_goal}"
    spec = {"original_tokens": tokens_for_bytes(nbytes_goal), "compression_ratio": 0.0, "seed": 1}
    nbytes = ray.get(source.offer_synthetic.remote(key, **spec), timeout=600)
    backend = make_backend(name, default_timeout_s=600)
    runs = []
    for _ in range(repeats + 1):
        status = start_transfer(backend, source, target, key).result(900)
        if status.backend != name or status.bytes_moved != nbytes:
            raise RuntimeError(f"{name}: unexpected ticket {status}")
        runs.append(status.elapsed_s)
    ray.get(source.withdraw.remote(key), timeout=60)
    return _point(nbytes, runs)


def measure_raw(a: Any, b: Any, nbytes: int, repeats: int) -> dict[str, dict[str, Any]]:
    raw = {"memcpy": _point(nbytes, ray.get(a.memcpy_s.remote(nbytes, repeats + 1), timeout=600))}
    target = ray.get(b.nixl_prepare.remote(nbytes), timeout=600)
    raw["nixl_write"] = _point(nbytes, ray.get(a.nixl_write_s.remote(target, nbytes, repeats + 1), timeout=600))
    ray.get([a.nixl_release.remote(), b.nixl_release.remote()], timeout=600)
    raw["gloo"] = _point(nbytes, raw_gloo_s(a, b, nbytes, repeats + 1))
    raw["object_store"] = _point(nbytes, raw_object_store_s(a, b, nbytes, repeats + 1))
    ray.get([a.forget.remote(), b.forget.remote()], timeout=60)
    return raw


def migrate_vs_reprefill(source: Any, target: Any, tokens: int = 4096, repeats: int = 2) -> dict[str, Any]:
    """A 4k-token session: re-prefill it on the target vs migrate its compressed cache (per backend)."""
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model
    from kvpool import PressSpec, pack

    engine = KVEngine(load_model(ModelConfig()), EMBEDDED_MODEL_ID)
    sentence = "The committee discussed the annual budget, the new library wing and several other matters. "
    ids = engine.tokenizer(sentence * (tokens // 10), add_special_tokens=False)["input_ids"][:tokens]
    press = PressSpec(name="knorm", compression_ratio=0.5)
    prefill_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        ckv = engine.prefill(ids, press)
        prefill_s.append(time.perf_counter() - start)
    ray.get(source.offer.remote("reprefill", pack(ckv)), timeout=300)
    migrate = {}
    for name in ("nixl", "collective", "object_store"):
        backend = make_backend(name)
        times = [start_transfer(backend, source, target, "reprefill").result(300).elapsed_s for _ in range(repeats + 1)]
        migrate[name] = {"cold_s": times[0], "warm_median_s": statistics.median(times[1:])}
    return {"context_tokens": len(ids), "press": press.model_dump(mode="json"), "cache_bytes": ckv.nbytes,
            "reprefill_median_s": statistics.median(prefill_s), "reprefill_runs_s": prefill_s, "migrate": migrate}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for name, points in report["backends"].items():
        axis.plot([p["nbytes"] / MIB for p in points], [p["best_gbytes_per_s"] for p in points], "o-", label=name)
    for name, points in report["raw"].items():
        axis.plot([p["nbytes"] / MIB for p in points], [p["best_gbytes_per_s"] for p in points], "x--", alpha=0.6,
                  label=f"raw {name}")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("payload (MiB)")
    axis.set_ylabel("throughput (GB/s, best warm run)")
    axis.set_title("kvfleet transfer backends vs raw copies (2-node simulated Ray cluster, CPU)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mib", type=int, nargs="*", default=[1, 4, 16, 64, 256, 512],
                        help="payload sizes; none (with --reprefill) runs only migrate vs re-prefill")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--reprefill", action="store_true", help="also time migrate vs re-prefill (loads the model)")
    parser.add_argument("--out", type=Path, default=RESULTS / "transfer_throughput.json")
    args = parser.parse_args()

    cluster = start_cluster()
    try:
        source = EndpointActor.options(resources={"node_a": 0.01}).remote()
        target = EndpointActor.options(resources={"node_b": 0.01}).remote(sink=True)
        neighbour = EndpointActor.options(resources={"node_a": 0.01}).remote(sink=True)
        raw_a = RawPeer.options(resources={"node_a": 0.01}).remote("raw-a")
        raw_b = RawPeer.options(resources={"node_b": 0.01}).remote("raw-b")
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "loadavg_at_start": os.getloadavg()},
            "setup": "2-node ray.cluster_utils.Cluster on one machine; payload = synthetic session "
                     "(30 layers x 3 KV heads x 64 dims, float32); target import hook counts bytes only",
            "raw_of": RAW_OF, "goal": "backend >= 0.5 x raw throughput for payloads >= 64 MiB",
            "statistics": "per point: 1 cold run, then --repeats warm runs; median and best (min) of the warm runs",
            "backends": {name: [] for name in args.backends}, "raw": {}, "ratio_to_raw": {},
        }
        for size in args.sizes_mib:
            for name, point in measure_raw(raw_a, raw_b, size * MIB, args.repeats).items():
                report["raw"].setdefault(name, []).append(point)
            for name in args.backends:
                point = measure_backend(name, source, neighbour if name == "local" else target, size * MIB,
                                        args.repeats)
                report["backends"][name].append(point)
                raw = report["raw"][RAW_OF[name]][-1]
                ratios = {"median": _ratio(point, raw, "warm_median_s"), "best": _ratio(point, raw, "warm_best_s"),
                          "best_vs_raw_nixl_write": _ratio(point, report["raw"]["nixl_write"][-1], "warm_best_s"),
                          "best_vs_memcpy": _ratio(point, report["raw"]["memcpy"][-1], "warm_best_s")}
                report["ratio_to_raw"].setdefault(name, {})[str(size)] = ratios
                print(f"{size:4d} MiB {name:13s} median {point['gbytes_per_s']:6.2f} best {point['best_gbytes_per_s']:6.2f}"
                      f" GB/s | raw {RAW_OF[name]:12s} median {raw['gbytes_per_s']:6.2f} best "
                      f"{raw['best_gbytes_per_s']:6.2f} GB/s | ratio median {ratios['median']:.2f} best "
                      f"{ratios['best']:.2f}", flush=True)
        if args.reprefill:
            report["migrate_vs_reprefill"] = migrate_vs_reprefill(source, target)
            print(json.dumps(report["migrate_vs_reprefill"], indent=1), flush=True)
        report["machine"]["loadavg_at_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        if args.sizes_mib:
            plot(report, args.out.with_suffix(".png"))
        print(f"wrote {args.out}" + (f" and {args.out.with_suffix('.png')}" if args.sizes_mib else ""))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
