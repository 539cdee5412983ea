"""Serving overhead (issue 6): what Ray Serve + HTTP add on top of the engine.

1. ``startup``: time from ``serve run <config>`` (a copy of configs/cluster.yaml on ``--startup-port``,
   warm model cache: the embedded model was converted before) to ``/health`` answering and to the
   first answered chat completion. ``serve run`` is a subprocess with its own Ray cluster; it runs
   first, alone, and is stopped (SIGINT, then its process group) before the rest starts.
2. ``ttft``: time to first token of the same question on the same stored cache (same context,
   same press, greedy), two variants in interleaved rounds so a slow phase of the shared machine
   hits both alike:
   - ``engine``: ``KVEngine.generate`` in this process (1 torch thread, like a replica), until the
     first token - what the replica's decode actor itself spends;
   - ``http``: a streamed ``POST /v1/chat/completions`` on the session through the real app
     (proxy, ingress, control-plane lookup, replica, decode actor), until the first content chunk.
   Reported: medians, p95, the median of per-round differences (the overhead) and the goal
   ``overhead <= 10 % of the engine's TTFT or <= 20 ms``. Where the overhead goes, measured in the
   same rounds: ``http_health`` (proxy + ingress round trip), ``handle_control_locate`` (the
   ingress's control-plane lookup) and ``handle_replica_first_token`` (the replica deployment's
   first token through a Serve handle: replica + decode actor + engine, no HTTP).
3. ``throughput``: completion tokens per second with 1, 4 and 16 concurrent streams (greedy,
   ``ignore_eos``, ``--stream-tokens`` tokens each) spread over 4 sessions on the 2 replicas:
   aggregate tokens/s (all tokens / wall time of the round) and per-stream decode tokens/s; the
   in-process engine decoding one stream is the reference.

    python benchmarks/serving_overhead.py                 # ~10 min on the 2-core CPU machine
    python benchmarks/serving_overhead.py --repeats 6 --concurrency 1 4 --skip-startup

Writes benchmarks/results/serving_overhead.json and .png. Wall-clock timings on a shared machine:
the recorded load averages (start, end) say how noisy the run was.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import yaml  # noqa: E402

from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.quality_tasks import needle_document  # noqa: E402
from benchmarks.serving.app import bench_args, running_kvfleet  # noqa: E402
from benchmarks.serving.client import MODEL, Answer  # noqa: E402
from benchmarks.timing import summarize  # noqa: E402

PRESS = {"name": "knorm", "compression_ratio": 0.5}
GOAL_RATIO, GOAL_MS = 0.10, 20.0
SESSIONS = 4
CONTROL_TICK_S = 2.0  # configs/cluster.yaml leaves AppConfig's default


def log(message: str) -> None:
    print(f"[serving_overhead {time.strftime('%H:%M:%S')}] {message}", flush=True)


def isolated_ray_env() -> dict[str, str]:
    """Env for a Ray cluster of our own: a fresh local one, in a private temp dir (other drivers on
    a shared machine neither join it nor are joined)."""
    return {"RAY_ADDRESS": "local", "RAY_TMPDIR": tempfile.mkdtemp(prefix="kvfleet-bench-")}


# ---- 1. serve run -> first answer --------------------------------------------------------------

def startup(port: int, timeout_s: float) -> dict[str, Any]:
    """Seconds from launching ``serve run`` to /health 200 and to the first 200 chat completion."""
    from deployments.engine.model_loader import ModelConfig, embedded_model_dir

    config = yaml.safe_load((REPO / "configs" / "cluster.yaml").read_text())
    config["http_options"]["port"] = port
    workdir = Path(tempfile.mkdtemp(prefix="kvfleet-serve-run-"))
    config["applications"][0]["args"]["control"]["store_path"] = str(workdir / "control.sqlite3")
    config_path = workdir / "cluster.yaml"
    config_path.write_text(yaml.safe_dump(config))
    warm = (embedded_model_dir(ModelConfig().cache_dir) / "config.json").is_file()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **isolated_ray_env()}
    log(f"serve run {config_path} (port {port}, model cache warm: {warm})")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ray.serve.scripts", "run", str(config_path)], cwd=REPO, env=env,
                            stdout=(workdir / "serve.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    health_s = answer_s = None
    try:
        deadline = start + timeout_s
        while time.perf_counter() < deadline and answer_s is None:
            if proc.poll() is not None:
                raise RuntimeError(f"serve run exited with {proc.returncode}; see {workdir / 'serve.log'}")
            try:
                if health_s is None and httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    health_s = time.perf_counter() - start
                    log(f"/health after {health_s:.1f} s")
                if health_s is not None:
                    reply = httpx.post(f"{base}/v1/chat/completions", timeout=120, json={
                        "model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "temperature": 0,
                        "max_tokens": 8})
                    if reply.status_code == 200:
                        answer_s = time.perf_counter() - start
                        log(f"first answer after {answer_s:.1f} s: {reply.json()['choices'][0]['message']['content']!r}")
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    finally:
        stop(proc)
    return {"port": port, "model_cache_warm": warm, "health_s": health_s, "first_answer_s": answer_s,
            "log": str(workdir / "serve.log")}


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (serve run shuts the app and its cluster down), then the process group it started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group of the process we started (its Ray processes)
        except ProcessLookupError:
            return
        time.sleep(3)


# ---- 2. TTFT: engine in-process vs HTTP ----------------------------------------------------------

def engine_ttft(engine: Any, ckv: Any, messages: list[dict]) -> tuple[float, str]:
    """Seconds to the first generated token in this process, and that token's text."""
    from deployments.engine.sampling import SamplingParams

    start = time.perf_counter()
    stream = engine.generate(ckv, messages, SamplingParams(max_tokens=1, temperature=0.0))
    step = next(stream)
    elapsed = time.perf_counter() - start
    stream.close()
    return elapsed, step.text


def hop_variants(target: Any, session: dict, messages: list[dict]) -> dict[str, Callable[[], tuple[float, str]]]:
    """The HTTP path's pieces through Serve handles from this process: the ingress's control-plane
    lookup, and the first token from the session's replica (replica + decode actor + engine)."""
    from ray import serve

    from control_plane.ids import ANONYMOUS_OWNER
    from deployments.engine.sampling import SamplingParams

    control = serve.get_deployment_handle("control", app_name=target.app_name)
    replica = target.replica_handle(session["replica"]).options(stream=True)
    sampling = SamplingParams(max_tokens=1, temperature=0.0).model_dump(mode="json")

    def locate() -> tuple[float, str]:
        start = time.perf_counter()
        control.locate.remote(session["id"], ANONYMOUS_OWNER).result(timeout_s=120)
        return time.perf_counter() - start, ""

    def replica_first() -> tuple[float, str]:
        start = time.perf_counter()
        stream = replica.chat.remote(session["id"], messages, sampling, None)
        item = next(iter(stream))
        elapsed = time.perf_counter() - start
        for _ in stream:  # drain the final step
            pass
        return elapsed, item["text"]

    return {"handle_control_locate": locate, "handle_replica_first_token": replica_first}


def ttft(target: Any, engine: Any, context: str, question: str, repeats: int) -> dict[str, Any]:
    from kvpool.press_spec import PressSpec

    session = target.client.create_session(context, PRESS)
    ckv = engine.prefill(context, PressSpec.model_validate(PRESS))
    assert session["tokens_read"] == ckv.meta.original_tokens, (session, ckv.meta)
    messages = [{"role": "user", "content": question}]
    def health() -> tuple[float, str]:
        start = time.perf_counter()
        target.client.health()
        return time.perf_counter() - start, ""

    variants: dict[str, Callable[[], tuple[float, str]]] = {
        "engine": lambda: engine_ttft(engine, ckv, messages),
        "http": lambda: (lambda a: (a.ttft_s, a.text))(target.client.ask(messages, session["id"], max_tokens=1)),
        "http_health": health,  # proxy + ingress round trip alone: the floor of any HTTP request
        **hop_variants(target, session, messages),
    }
    for fn in variants.values():  # warm-up: first calls pay one-off costs on both sides
        fn()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    texts: dict[str, set[str]] = {name: set() for name in variants}
    names = list(variants)
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, text = variants[name]()
            samples[name].append(seconds)
            texts[name].add(text)
        log(f"ttft round {r + 1}/{repeats}: " + ", ".join(f"{n} {samples[n][-1] * 1e3:.1f} ms" for n in names)
            + f" (load {os.getloadavg()[0]:.1f})")
    overhead_ms = [(h - e) * 1e3 for h, e in zip(samples["http"], samples["engine"])]
    engine_ms = statistics.median(samples["engine"]) * 1e3
    median_overhead_ms = statistics.median(overhead_ms)
    return {"context_tokens": ckv.meta.original_tokens, "kept_tokens": session["tokens_kept"],
            "replica": session["replica"], "question": question,
            "first_token": {name: sorted(texts[name]) for name in ("engine", "http")},
            "engine": summarize(samples["engine"]), "http": summarize(samples["http"]),
            **{name: summarize(samples[name]) for name in names if name not in ("engine", "http")},
            "overhead_ms": summarize(overhead_ms, unit="ms"),
            "overhead_ratio": median_overhead_ms / engine_ms,
            "goal": f"overhead <= {GOAL_RATIO:.0%} of engine TTFT or <= {GOAL_MS:.0f} ms",
            "goal_met": median_overhead_ms <= GOAL_MS or median_overhead_ms / engine_ms <= GOAL_RATIO,
            "samples_s": samples}


# ---- 3. tokens/s with concurrent streams ---------------------------------------------------------

def engine_decode_rate(engine: Any, ckv: Any, messages: list[dict], tokens: int) -> float:
    """Decode tokens/s of one stream in this process (after the first token)."""
    from deployments.engine.sampling import SamplingParams

    stream = engine.generate(ckv, messages, SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True))
    next(stream)
    start = time.perf_counter()
    produced = sum(1 for step in stream if step.token is not None)
    return produced / (time.perf_counter() - start)


def throughput(target: Any, engine: Any, documents: list[str], question: str, concurrencies: list[int],
               tokens: int, rounds: int) -> dict[str, Any]:
    from kvpool.press_spec import PressSpec

    sessions = [target.client.create_session(doc, PRESS) for doc in documents]
    messages = [{"role": "user", "content": question}]
    ckv = engine.prefill(documents[0], PressSpec.model_validate(PRESS))
    engine_rates: list[float] = []  # measured right after each 1-stream HTTP round: same machine phase
    rows = []
    for c in concurrencies:
        aggregate, per_stream, ttfts = [], [], []
        for r in range(rounds):
            with concurrent.futures.ThreadPoolExecutor(max_workers=c) as pool:
                start = time.perf_counter()
                answers: list[Answer] = list(pool.map(
                    lambda i: target.client.ask(messages, sessions[i % len(sessions)]["id"], max_tokens=tokens,
                                                ignore_eos=True), range(c)))
                wall = time.perf_counter() - start
            assert all(a.completion_tokens == tokens for a in answers), [a.completion_tokens for a in answers]
            aggregate.append(sum(a.completion_tokens for a in answers) / wall)
            per_stream += [a.decode_tokens_per_s for a in answers if a.decode_tokens_per_s]
            ttfts += [a.ttft_s for a in answers]
            log(f"{c} streams, round {r + 1}/{rounds}: {aggregate[-1]:.1f} tokens/s in all")
            if c == 1:
                engine_rates.append(engine_decode_rate(engine, ckv, messages, tokens))
                log(f"engine in-process, 1 stream: {engine_rates[-1]:.1f} tokens/s")
        rows.append({"concurrency": c, "aggregate_tokens_per_s": summarize(aggregate, unit="tps"),
                     "per_stream_decode_tokens_per_s": summarize(per_stream, unit="tps"),
                     "ttft": summarize(ttfts)})
    if not engine_rates:
        engine_rates = [engine_decode_rate(engine, ckv, messages, tokens) for _ in range(rounds)]
    return {"stream_tokens": tokens, "sessions": [{"id": s["id"], "replica": s["replica"],
                                                   "tokens_read": s["tokens_read"]} for s in sessions],
            "engine_single_stream_tokens_per_s": statistics.median(engine_rates),
            "engine_single_stream_samples": engine_rates, "rows": rows}


# ---- plot ------------------------------------------------------------------------------------

def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t = result.get("ttft")
    if t:
        ax = axes[0]
        labels = {"engine": "engine\nin-process", "handle_replica_first_token": "replica\nhandle",
                  "http": "HTTP\n(all hops)", "http_health": "HTTP\n/health", "handle_control_locate": "control\nlocate"}
        shown = [name for name in labels if name in t["samples_s"]]
        ax.boxplot([[s * 1e3 for s in t["samples_s"][name]] for name in shown], tick_labels=[labels[n] for n in shown],
                   showfliers=False)
        ax.set_ylabel("ms (first token; a round trip for /health, locate)")
        ax.set_title(f"TTFT, {t['context_tokens']}-token context, knorm 0.5\n"
                     f"overhead median {t['overhead_ms']['median_ms']:.1f} ms "
                     f"({t['overhead_ratio']:.0%}); goal met: {t['goal_met']}")
    tp = result.get("throughput")
    if tp:
        ax = axes[1]
        cs = [row["concurrency"] for row in tp["rows"]]
        ax.plot(cs, [row["aggregate_tokens_per_s"]["median_tps"] for row in tp["rows"]], "o-", label="aggregate")
        ax.plot(cs, [row["per_stream_decode_tokens_per_s"]["median_tps"] for row in tp["rows"]], "s--",
                label="per stream (decode)")
        ax.axhline(tp["engine_single_stream_tokens_per_s"], color="grey", linestyle=":",
                   label="engine, 1 stream in-process")
        ax.set_xscale("log", base=2)
        ax.set_xticks(cs, [str(c) for c in cs])
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("completion tokens / s")
        ax.set_title(f"throughput over HTTP, 2 replicas, {tp['stream_tokens']} tokens per stream")
        ax.legend()
    s = result.get("startup")
    if s and s.get("first_answer_s"):
        ax = axes[2]
        ax.barh(["/health", "first answer"], [s["health_s"], s["first_answer_s"]], color=["#9ab", "#468"])
        ax.set_xlabel("seconds after `serve run`")
        ax.set_title(f"start-up (model cache warm: {s['model_cache_warm']})")
    else:
        axes[2].set_visible(False)
    load = result["provenance"]["machine"]["load_average"]
    fig.suptitle(f"kvfleet serving overhead - {result['provenance']['machine']['cores']} cores, "
                 f"load average at start {load[0]:.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8320, help="HTTP port of the app started here (8300-8399)")
    parser.add_argument("--startup-port", type=int, default=8321, help="HTTP port of the `serve run` app")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--startup-timeout-s", type=float, default=900.0)
    parser.add_argument("--context-tokens", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=20, help="interleaved TTFT rounds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--stream-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per concurrency")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "serving_overhead.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    result: dict[str, Any] = {"provenance": provenance(vars(args) | {"out": str(args.out), "press": PRESS})}
    if not args.skip_startup:
        result["startup"] = startup(args.startup_port, args.startup_timeout_s)

    import torch

    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import ModelConfig, load_model

    torch.set_num_threads(1)  # as a replica's model process (replicas.torch_threads)
    loaded = load_model(ModelConfig())
    engine = KVEngine(loaded, ModelConfig().name)
    count = lambda text: len(loaded.tokenizer.encode(text))  # noqa: E731
    documents = [needle_document(seed, args.context_tokens, count) for seed in range(SESSIONS)]
    question = documents[0].items[len(documents[0].items) // 2].question

    os.environ.update(isolated_ray_env())
    app_args = bench_args() | {"control_tick_s": CONTROL_TICK_S}  # the shipped config's tick, not the tests' 0.5 s
    result["app_args"] = app_args
    with running_kvfleet(port=args.port, args=app_args) as target:
        log(f"app up at {target.base_url}")
        result["ttft"] = ttft(target, engine, documents[0].context, question, args.repeats)
        result["throughput"] = throughput(target, engine, [d.context for d in documents], question,
                                          args.concurrency, args.stream_tokens, args.rounds)
    finish(result, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    t = result["ttft"]
    log(f"TTFT engine {t['engine']['median_s'] * 1e3:.1f} ms, http {t['http']['median_s'] * 1e3:.1f} ms, "
        f"overhead {t['overhead_ms']['median_ms']:.1f} ms ({t['overhead_ratio']:.0%}), goal met: {t['goal_met']}")
    for row in result["throughput"]["rows"]:
        log(f"{row['concurrency']:>2} streams: {row['aggregate_tokens_per_s']['median_tps']:.1f} tokens/s in all")
    if "startup" in result:
        log(f"serve run -> /health {result['startup']['health_s']} s, first answer {result['startup']['first_answer_s']} s")
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()
