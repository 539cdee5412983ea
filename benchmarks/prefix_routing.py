"""Prefix-aware routing of plain requests vs round robin, in one run:
``python -m benchmarks.prefix_routing [--docs 4] [--asks 4] [--clients 2] [--port 8140]``.

K documents, each asked R different questions as *plain* requests (no session; messages
``[system: document, user: question]``), from C concurrent clients (client c asks about documents
k with k % C == c, in rounds). The same workload runs against the same 2-replica application
deployed with ``plain.routing.policy: round_robin`` and then ``prefix_affinity`` (one Ray
cluster; documents above ``plain.compression_threshold_tokens`` so their prefixes are stored
compressed, knorm 0.5).

Per policy: hit rate (requests whose ``usage.prompt_tokens_details.cached_tokens`` > 0, i.e. that
reused a stored compressed prefix), TTFT p50 / p95 (streaming, to the first content token), and
the ratio round_robin / prefix_affinity of the TTFT p50. Goal: hit rate >= (R-1)/R with
prefix_affinity (every ask after a document's first hits).

Writes ``benchmarks/results/prefix_routing.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.provenance import RESULTS_DIR, finish, provenance
from benchmarks.timing import percentile

MAX_TOKENS = 4
POLICIES = ("round_robin", "prefix_affinity")
QUESTIONS = ("What is the quarterly target?", "Which city ships the boards?", "When is the launch?",
             "Who answers questions?", "Summarise the memo in five words.", "What ships from Porto?",
             "Name the two suppliers.", "Which desk takes questions?")
FILLER = ("The committee reviewed the budget, the schedule for the new warehouse, the hiring plan for the "
          "support team and several unrelated matters raised by the regional offices. ")


def document(k: int, repeats: int) -> str:
    """A distinct ~(repeats x 30)-token memo for document ``k``."""
    return (f"Memo number {k}. The quarterly target is {4200 + 17 * k} units. The launch moved to week {k + 2}. "
            "The supplier in Porto ships the housings; the supplier in Lyon ships the boards. "
            + FILLER * repeats + "Questions go to the operations desk.")


def ask(base_url: str, doc: str, question: str) -> dict[str, Any]:
    """One streaming plain request: TTFT (to the first content token) and cached tokens."""
    from openai import OpenAI

    from tests.serving import MODEL

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=600)
    start = time.perf_counter()
    ttft, cached = None, None
    stream = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=MAX_TOKENS, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": doc}, {"role": "user", "content": question}])
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
        if chunk.usage is not None:
            cached = chunk.usage.prompt_tokens_details.cached_tokens
    if ttft is None or cached is None:
        raise RuntimeError("the stream had no content token or no usage")
    return {"ttft_s": ttft, "cached_tokens": cached}


def workload(base_url: str, docs: list[str], asks: int, clients: int) -> list[dict[str, Any]]:
    """Every (document, ask) once, C client threads; returns one record per request."""
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            for r in range(asks):
                for k in range(c, len(docs), clients):
                    record = ask(base_url, docs[k], QUESTIONS[(r + k) % len(QUESTIONS)])
                    with lock:
                        records.append({"doc": k, "ask": r, **record})
        except BaseException as exc:  # re-raised below: a failed request fails the benchmark
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return records


def summarize_policy(records: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = [r["ttft_s"] for r in records]
    hits = [r for r in records if r["cached_tokens"] > 0]
    misses = [r for r in records if r["cached_tokens"] == 0]
    return {"requests": len(records), "hits": len(hits), "hit_rate": len(hits) / len(records),
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95),
            "ttft_hit_p50_s": percentile([r["ttft_s"] for r in hits], 50) if hits else None,
            "ttft_miss_p50_s": percentile([r["ttft_s"] for r in misses], 50) if misses else None,
            "second_ask_hits": sum(1 for r in records if r["ask"] == 1 and r["cached_tokens"] > 0),
            "records": records}


def run(docs: int, asks: int, clients: int, doc_repeats: int, port: int) -> dict:
    import httpx

    from tests.serving import ray_cluster, serve_app, small_args

    started = time.perf_counter()
    texts = [document(k, doc_repeats) for k in range(docs)]
    result = provenance({"docs": docs, "asks": asks, "clients": clients, "doc_repeats": doc_repeats,
                         "max_tokens": MAX_TOKENS, "replicas": 2, "policies": list(POLICIES),
                         "compression_threshold_tokens": 256, "press": {"name": "knorm", "compression_ratio": 0.5}})
    results: dict[str, Any] = {}
    with ray_cluster(num_cpus=4):
        for policy in POLICIES:
            args = small_args(plain={"routing": {"policy": policy}, "compression_threshold_tokens": 256})
            with serve_app(port, args, name=f"route-{policy}", route_prefix=f"/{policy}", timeout_s=900) as url:
                ask(url, "warm-up document. " * 4, "hi")  # load both replicas' first-request paths
                ask(url, "another warm-up. " * 4, "hi")
                results[policy] = summarize_policy(workload(url, texts, asks, clients))
                results[policy]["prompt_tokens_per_doc"] = httpx.post(
                    f"{url}/v1/chat/completions", timeout=600, json={
                        "model": "embedded:smollm2-135m-instruct", "max_tokens": 1, "temperature": 0,
                        "messages": [{"role": "system", "content": texts[0]}, {"role": "user", "content": "hi"}]},
                ).json()["usage"]["prompt_tokens"]
    rr, pa = results["round_robin"], results["prefix_affinity"]
    result["results"] = {**results, "goal_hit_rate": (asks - 1) / asks,
                         "goal_met": pa["hit_rate"] >= (asks - 1) / asks,
                         "ttft_p50_ratio_round_robin_over_prefix": rr["ttft_p50_s"] / pa["ttft_p50_s"],
                         "ttft_p95_ratio_round_robin_over_prefix": rr["ttft_p95_s"] / pa["ttft_p95_s"]}
    return finish(result, started)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    colours = ["#999", "#36c"]
    rates = [r[p]["hit_rate"] for p in POLICIES]
    left.bar(POLICIES, rates, color=colours)
    left.axhline(r["goal_hit_rate"], color="#c63", linestyle="--", label=f"goal (R-1)/R = {r['goal_hit_rate']:.2f}")
    left.set_ylim(0, 1.05)
    left.set_ylabel("prefix hit rate")
    left.legend(fontsize=8)
    for i, value in enumerate(rates):
        left.text(i, value, f"{value:.2f}", ha="center", va="bottom")
    width = 0.38
    for j, (key, label) in enumerate((("ttft_p50_s", "p50"), ("ttft_p95_s", "p95"))):
        values = [r[p][key] for p in POLICIES]
        xs = [i + (j - 0.5) * width for i in range(len(POLICIES))]
        right.bar(xs, values, width, label=label, color=["#6a9", "#c96"][j])
        for x, value in zip(xs, values):
            right.text(x, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    right.set_xticks(range(len(POLICIES)), POLICIES)
    right.set_ylabel("TTFT seconds")
    right.legend(fontsize=8)
    cfg = result["config"]
    fig.suptitle(f"plain requests, {cfg['docs']} docs x {cfg['asks']} asks, {cfg['clients']} clients, 2 replicas (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--asks", type=int, default=4)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--doc-repeats", type=int, default=14, help="filler sentences per document (~30 tokens each)")
    parser.add_argument("--port", type=int, default=8140)
    args = parser.parse_args()
    result = run(args.docs, args.asks, args.clients, args.doc_repeats, args.port)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "prefix_routing.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    summary = {p: {k: v for k, v in result["results"][p].items() if k != "records"} for p in POLICIES}
    print(json.dumps({**result["results"], **summary}, indent=2))


if __name__ == "__main__":
    main()
