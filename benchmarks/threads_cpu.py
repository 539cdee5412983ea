"""Threads per replica vs replicas per machine on this CPU (issue 26, item 5), over HTTP, same run.

A 2-core machine can run kvfleet as two replicas of one torch thread each (the default,
configs/cluster.yaml) or as one replica of two threads. One Ray cluster serves both layouts as
two apps on one port (route prefixes ``/r2t1`` and ``/r1t2``), and every measurement is taken
for each layout in turn:

- ``load_one_s``: one ~``--tokens``-token session load with the default press (client wall time,
  median of ``--rounds``);
- ``load_two_s``: two such loads sent at once (the time until both are stored);
- ``decode``: aggregate completion tokens/s of 1 and ``--streams`` concurrent greedy streams over
  two sessions (each layout's two sessions; on ``r2t1`` they sit on different replicas when
  placement spreads them, reported per run);
- ``ttft_s``: time to the first streamed token of a question on a stored session.

    python benchmarks/threads_cpu.py --port 8333       # ~5 min on a quiet machine

Writes benchmarks/results/threads_cpu.json and .png. It starts its own Ray cluster.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.batched_decode import run_round  # noqa: E402
from benchmarks.dtype_cpu import document  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.serving.app import bench_args, serving_helpers  # noqa: E402
from benchmarks.serving.client import KVFleetClient  # noqa: E402
from deployments.config import AppConfig  # noqa: E402

LAYOUTS = {"r2t1": (2, 1), "r1t2": (1, 2)}  # name: (replicas, torch threads per model process)


def log(message: str) -> None:
    print(f"[threads_cpu {time.strftime('%H:%M:%S')}] {message}", flush=True)


def app_args(replicas: int, threads: int) -> dict[str, Any]:
    args = bench_args(replicas=replicas)
    args["replicas"] = {**args["replicas"], "torch_threads": threads, "max_ongoing_requests": 64,
                        "max_queued_requests": 128}
    return args


@contextlib.contextmanager
def running_layouts(port: int) -> Iterator[dict[str, str]]:
    helpers = serving_helpers()
    with helpers.ray_cluster(num_cpus=4), contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(helpers.serve_app(port=port, args=app_args(*shape), name=f"threads-{name}",
                                                           route_prefix=f"/{name}", timeout_s=900))
               for name, shape in LAYOUTS.items()}


def ttft(client: KVFleetClient, session_id: str) -> float:
    """Time to the first streamed token of a question on a stored session, s."""
    return client.ask([{"role": "user", "content": "What is the secret code of the vault?"}], session_id=session_id,
                      max_tokens=4).ttft_s


def measure(args: argparse.Namespace, press: dict) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {name: {"layout": name, "replicas": shape[0], "torch_threads": shape[1],
                                             "load_one_s": [], "load_two_s": [], "ttft_s": [], "decode": []}
                                      for name, shape in LAYOUTS.items()}
    salt = 100
    with running_layouts(args.port) as urls:
        clients = {name: KVFleetClient(url, timeout_s=1800) for name, url in urls.items()}
        sessions: dict[str, list[dict]] = {}
        for name, client in clients.items():  # warm-up, and the two sessions the decode rounds use
            sessions[name] = [client.create_session(document(args.tokens, salt + i), press) for i in range(2)]
            out[name]["decode_session_replicas"] = [s.get("replica") for s in sessions[name]]
        for _ in range(args.rounds):
            for name, client in clients.items():
                salt += 10
                view = client.create_session(document(args.tokens, salt), press)
                out[name]["load_one_s"].append(round(view["client_load_s"], 3))
                client.delete_session(view["id"])
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    start = time.perf_counter()
                    views = list(pool.map(lambda i: client.create_session(document(args.tokens, salt + 1 + i), press),
                                          range(2)))
                    out[name]["load_two_s"].append(round(time.perf_counter() - start, 3))
                for view in views:
                    client.delete_session(view["id"])
                out[name]["ttft_s"].append(round(ttft(client, sessions[name][0]["id"]), 3))
                log(f"{name}: load one {out[name]['load_one_s'][-1]} s, two {out[name]['load_two_s'][-1]} s, "
                    f"ttft {out[name]['ttft_s'][-1]} s")
        for name, url in urls.items():
            run_round(url, [s["id"] for s in sessions[name]], 2, 4)  # warm-up of the decode loops
        for streams in (1, args.streams):
            for name, url in urls.items():
                r = run_round(url, [s["id"] for s in sessions[name]], streams, args.decode_tokens)
                log(f"{name}: decode x{streams} {r['aggregate_tokens_per_s']} tok/s")
                out[name]["decode"].append(r)
        for client in clients.values():
            client.close()
    for row in out.values():
        for key in ("load_one_s", "load_two_s", "ttft_s"):
            row[f"{key}_median"] = statistics.median(row[key])
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["layouts"]
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, key, title in zip(axes[:2], ("load_one_s_median", "load_two_s_median"),
                              ("one session load, s", "two loads at once, s")):
        ax.bar(names, [rows[n][key] for n in names])
        ax.set_title(title)
    width = 0.35
    for i, n in enumerate(names):
        decode = rows[n]["decode"]
        axes[2].bar([j + i * width for j in range(len(decode))], [d["aggregate_tokens_per_s"] for d in decode],
                    width, label=n)
    axes[2].set_xticks([j + width / 2 for j in range(len(rows[names[0]]["decode"]))],
                       [f"{d['concurrency']} streams" for d in rows[names[0]]["decode"]])
    axes[2].set_title("aggregate decode tok/s")
    axes[2].legend()
    fig.suptitle("2 replicas x 1 torch thread (r2t1) vs 1 replica x 2 threads (r1t2), 2 cores, over HTTP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1024, help="document tokens (about)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--decode-tokens", type=int, default=24)
    parser.add_argument("--port", type=int, default=int(os.environ.get("KVFLEET_E2E_PORT", "8326")))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "threads_cpu.json")
    args = parser.parse_args()
    started = time.perf_counter()
    press = AppConfig().default_press.model_dump(mode="json", exclude_none=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"provenance": provenance({**config, "press": press, "transport": "HTTP"})}
    result["layouts"] = measure(args, press)
    finish(result, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    log(f"wrote {args.out}: " + json.dumps({n: {k: v for k, v in r.items() if k.endswith("median")}
                                             for n, r in result["layouts"].items()}))


if __name__ == "__main__":
    main()
