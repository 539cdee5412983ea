"""float32 vs bfloat16 on this CPU (issue 26), over HTTP, same run: prefill, session load, decode.

One Ray cluster serves one app per dtype (``model.dtype``; ``auto`` picks bfloat16 on AMX /
AVX-512 BF16 CPUs) on one port, each with one replica (1 torch thread, continuous batching on),
and every measurement is taken through the real HTTP API for each dtype in turn (interleaved, so
the load of a shared machine weighs on both alike):

- ``prefill``: a ~1k and a ~4k-token document loaded with no press: context tokens / the server's
  prefill-and-store time (``timings.prefill_store_s``);
- ``load``: the same documents loaded with the app's default press (``AppConfig.default_press``,
  kvzip: reconstruction-based scoring passes over the context): wall time of ``POST /v1/sessions`` as the
  client sees it, and the bytes stored;
- ``decode``: aggregate completion tokens/s of 1, 8, 16 concurrent greedy streams (``ignore_eos``,
  ``--tokens`` each) on one session (the ~1k document under the default press), with the HTTP
  streaming round of benchmarks/batched_decode.py.

Ratios are bfloat16 over float32 of the same run (load: float32 time / bfloat16 time). Goals
(issue 26, this machine): session load >= 2.5x faster, aggregate decode at 16 streams >= 1.5x.

    nice -n 10 python benchmarks/dtype_cpu.py                     # ~20-30 min on the shared 2-core machine
    python benchmarks/dtype_cpu.py --lengths 1024 --concurrency 1 8 --tokens 8   # quick look

Writes benchmarks/results/dtype_cpu.json and .png (``--out`` to change). It starts its own Ray
cluster: run it with no other Ray cluster of yours on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.batched_decode import run_round  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.serving.app import bench_args, serving_helpers  # noqa: E402
from benchmarks.serving.client import KVFleetClient  # noqa: E402
from deployments.config import AppConfig  # noqa: E402

GOALS = {"load_x": 2.5, "decode_x_at_16": 1.5}
NO_PRESS = {"name": "none"}
FILLER = ("The committee discussed the annual budget, the new library wing and several unrelated matters. "
          "Minutes were taken and approved without changes. ")
FACT = "The secret code of the vault is 7341. "
TOKENS_PER_FILLER = 24  # SmolLM2 tokens of FILLER (the server reports the exact count read)


def log(message: str) -> None:
    print(f"[dtype_cpu {time.strftime('%H:%M:%S')}] {message}", flush=True)


def document(tokens: int, salt: int) -> str:
    """About ``tokens`` tokens of filler with a fact in the middle; ``salt`` makes each document
    distinct so no stored prefix is reused between loads."""
    repeats = max(2, tokens // TOKENS_PER_FILLER)
    half = repeats // 2
    return f"Document {salt}. " + FILLER * half + FACT + FILLER * (repeats - half)


def app_args(dtype: str, press: dict) -> dict[str, Any]:
    args = bench_args(replicas=1)
    args["model"] = {"dtype": dtype}
    args["default_press"] = press
    args["replicas"] = {**args["replicas"], "max_ongoing_requests": 64, "max_queued_requests": 128}
    return args


@contextlib.contextmanager
def running_apps(dtypes: list[str], press: dict, port: int) -> Iterator[dict[str, str]]:
    """One Ray cluster, one app per dtype on one port (route prefix ``/<dtype>``): {dtype: base URL}."""
    helpers = serving_helpers()
    with helpers.ray_cluster(num_cpus=4), contextlib.ExitStack() as stack:
        yield {dtype: stack.enter_context(helpers.serve_app(port=port, args=app_args(dtype, press), name=f"dtype-{dtype}",
                                                            route_prefix=f"/{dtype}", timeout_s=900))
               for dtype in dtypes}


def measure(args: argparse.Namespace, press: dict) -> list[dict[str, Any]]:
    """Every measurement is taken for each dtype in turn (interleaved), so that the load of a
    shared machine weighs on both alike."""
    out = {d: {"dtype": d, "prefill": [], "load": [], "decode": []} for d in args.dtypes}
    with running_apps(args.dtypes, press, args.port) as urls:
        clients = {d: KVFleetClient(url, timeout_s=1800) for d, url in urls.items()}
        decode_sessions: dict[str, str] = {}
        for d, client in clients.items():  # warm-up: first forward, first backward
            client.create_session(document(128, 0), NO_PRESS)
            client.create_session(document(128, 1), press)
        for i, tokens in enumerate(args.lengths):
            for d, client in clients.items():
                plain = client.create_session(document(tokens, 10 + i), NO_PRESS)
                seconds = plain["timings"]["prefill_store_s"]
                out[d]["prefill"].append({"target_tokens": tokens, "tokens_read": plain["tokens_read"],
                                          "prefill_store_s": seconds,
                                          "tokens_per_s": round(plain["tokens_read"] / seconds, 1),
                                          "bytes_stored": plain["bytes_stored"]})
                client.delete_session(plain["id"])
                log(f"{d} {tokens} tokens: prefill {out[d]['prefill'][-1]['tokens_per_s']} tok/s")
            for d, client in clients.items():
                pressed = client.create_session(document(tokens, 20 + i), press)
                out[d]["load"].append({"target_tokens": tokens, "tokens_read": pressed["tokens_read"],
                                       "tokens_kept": pressed["tokens_kept"],
                                       "load_s": round(pressed["client_load_s"], 3),
                                       "prefill_store_s": pressed["timings"]["prefill_store_s"],
                                       "bytes_stored": pressed["bytes_stored"]})
                log(f"{d} {tokens} tokens: {press['name']} load {out[d]['load'][-1]['load_s']} s")
                if d not in decode_sessions:
                    decode_sessions[d] = pressed["id"]
                else:
                    client.delete_session(pressed["id"])
        for d, url in urls.items():
            run_round(url, [decode_sessions[d]], 1, 4)  # warm-up of the decode loop
        for c in args.concurrency:
            for d, url in urls.items():
                r = run_round(url, [decode_sessions[d]], c, args.tokens)
                log(f"{d} decode x{c}: {r['aggregate_tokens_per_s']} tok/s")
                out[d]["decode"].append(r)
        for client in clients.values():
            client.close()
    return list(out.values())


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """bfloat16 over float32 (load: float32 seconds / bfloat16 seconds) and the goals' verdicts."""
    by = {m["dtype"]: m for m in result["dtypes"]}
    if not {"float32", "bfloat16"} <= set(by):
        return {}
    f32, bf16 = by["float32"], by["bfloat16"]
    out: dict[str, Any] = {
        "prefill_x": {p["tokens_read"]: round(q["tokens_per_s"] / p["tokens_per_s"], 3)
                      for p, q in zip(f32["prefill"], bf16["prefill"])},
        "load_x": {p["tokens_read"]: round(p["load_s"] / q["load_s"], 3) for p, q in zip(f32["load"], bf16["load"])},
        "bytes_x": {p["tokens_read"]: round(q["bytes_stored"] / p["bytes_stored"], 3)
                    for p, q in zip(f32["load"], bf16["load"])},
        "decode_x": {p["concurrency"]: round(q["aggregate_tokens_per_s"] / p["aggregate_tokens_per_s"], 3)
                     for p, q in zip(f32["decode"], bf16["decode"])},
    }
    out["meets"] = {"load_x": bool(out["load_x"]) and min(out["load_x"].values()) >= GOALS["load_x"],
                    "decode_x_at_16": out["decode_x"].get(16, 0) >= GOALS["decode_x_at_16"]}
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for m in result["dtypes"]:
        label = m["dtype"]
        axes[0].plot([p["tokens_read"] for p in m["prefill"]], [p["tokens_per_s"] for p in m["prefill"]],
                     marker="o", label=label)
        axes[1].plot([p["tokens_read"] for p in m["load"]], [p["load_s"] for p in m["load"]], marker="o", label=label)
        axes[2].plot([r["concurrency"] for r in m["decode"]], [r["aggregate_tokens_per_s"] for r in m["decode"]],
                     marker="o", label=label)
    titles = ("prefill tokens/s (no press)", f"session load s ({result['provenance']['config']['press']['name']})",
              "aggregate decode tokens/s")
    for ax, title, xlabel in zip(axes, titles, ("context tokens", "context tokens", "concurrent streams")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("kvfleet on this CPU, float32 vs bfloat16, one replica, 1 torch thread, over HTTP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 4096], help="document tokens (about)")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 16])
    parser.add_argument("--tokens", type=int, default=24, help="completion tokens per stream")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KVFLEET_E2E_PORT", "8326")))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "dtype_cpu.json")
    args = parser.parse_args()
    started = time.perf_counter()
    press = AppConfig().default_press.model_dump(mode="json", exclude_none=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"provenance": provenance({**config, "press": press, "goals": GOALS,
                                                        "transport": "HTTP"}), "dtypes": []}
    result["dtypes"] = measure(args, press)
    result["ratios"] = ratios(result)
    finish(result, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}: {json.dumps(result['ratios'])}")


if __name__ == "__main__":
    main()
