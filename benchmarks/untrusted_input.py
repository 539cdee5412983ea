"""Bad input costs bounded work: how fast an oversized request is refused, and what it does to
everyone else. ``python -m benchmarks.untrusted_input [--repeats 12] [--port 8131]``.

One kvfleet application (1 replica, default limits: ``max_body_bytes`` 8 MiB, ``max_context_tokens``
8000). Two "other" clients ask short plain questions (4 tokens) in a loop, first alone
(``baseline``), then while an attacker sends, back to back, 30 MB bodies (refused 413 by the body
limit before anything parses them) and 6 MB contexts under the body limit (refused 413 by the
character bound before any tokenization) (``under_attack``). Reported: the attacker's reply times
and statuses, the other clients' latencies in both phases, and their ratio (under attack /
baseline, medians) - measured in one run on this machine; read the ratio, not the seconds.

Before the app starts, in process: the ingress's bounded context check (``ContextLimit.check``) on
the same 6 MB context vs tokenizing all of it (what the check did before issue 19).

Writes ``benchmarks/results/untrusted_input.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import httpx

from benchmarks.provenance import RESULTS_DIR, finish, provenance
from benchmarks.timing import summarize

HUGE_BODY_BYTES = 30 << 20
BIG_CONTEXT_CHARS = 6 << 20
CLIENTS = 2


def _ask(url: str, model: str) -> float:
    t0 = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=600, json={
        "model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0})
    reply.raise_for_status()
    return time.perf_counter() - t0


def _clients(url: str, model: str, repeats: int) -> list[float]:
    samples: list[list[float]] = [[] for _ in range(CLIENTS)]

    def loop(i: int) -> None:
        for _ in range(repeats):
            samples[i].append(_ask(url, model))

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [s for per_client in samples for s in per_client]


def _attacker(url: str, model: str, stop: threading.Event, out: dict[str, list]) -> None:
    huge = b'{"model": "%s", "context": "' % model.encode() + b"a" * HUGE_BODY_BYTES + b'"}'
    big = {"model": model, "context": "a " * (BIG_CONTEXT_CHARS // 2)}
    with httpx.Client(timeout=600) as client:
        while not stop.is_set():
            for kind, kwargs in (("body_30mb", {"content": huge, "headers": {"content-type": "application/json"}}),
                                 ("context_6mb", {"json": big})):
                t0 = time.perf_counter()
                reply = client.post(f"{url}/v1/sessions", **kwargs)
                out[kind].append(time.perf_counter() - t0)
                out[kind + "_status"].append(reply.status_code)


def context_check_vs_full_tokenization() -> dict:
    from deployments.ingress.guards.context_limit import ContextLimit
    from deployments.engine.engine import ContextTooLongError
    from deployments.engine.model_loader import ModelConfig

    limit = ContextLimit(ModelConfig(), 8000)
    text = "word " * (BIG_CONTEXT_CHARS // 5)
    t0 = time.perf_counter()
    try:
        limit.check(text)
    except ContextTooLongError:
        pass
    bounded = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokens = len(limit.renderer.encode(text))
    full = time.perf_counter() - t0
    return {"context_chars": len(text), "tokens": tokens, "bounded_check_s": round(bounded, 5),
            "full_tokenization_s": round(full, 3), "full_over_bounded_ratio": round(full / max(bounded, 1e-6), 1)}


def run(repeats: int, port: int) -> dict:
    from tests.serving import MODEL, ray_cluster, serve_app, small_args

    started = time.perf_counter()
    result = provenance({"repeats_per_client": repeats, "clients": CLIENTS, "huge_body_bytes": HUGE_BODY_BYTES,
                         "big_context_chars": BIG_CONTEXT_CHARS, "replicas": 1})
    in_process = context_check_vs_full_tokenization()
    with ray_cluster(num_cpus=4), serve_app(port, small_args(replicas={"count": 1}), timeout_s=900) as url:
        _ask(url, MODEL)  # warm
        baseline = _clients(url, MODEL, repeats)
        stop = threading.Event()
        attack: dict[str, list] = {"body_30mb": [], "body_30mb_status": [], "context_6mb": [], "context_6mb_status": []}
        attacker = threading.Thread(target=_attacker, args=(url, MODEL, stop, attack))
        attacker.start()
        under_attack = _clients(url, MODEL, repeats)
        stop.set()
        attacker.join()
    base, hit = summarize(baseline), summarize(under_attack)
    result["results"] = {
        "body_30mb_reply": summarize(attack["body_30mb"]),
        "body_30mb_statuses": sorted(set(attack["body_30mb_status"])),
        "context_6mb_reply": summarize(attack["context_6mb"]),
        "context_6mb_statuses": sorted(set(attack["context_6mb_status"])),
        "others_baseline": base, "others_under_attack": hit,
        "others_median_ratio_attack_over_baseline": round(hit["median_s"] / base["median_s"], 3),
        "context_check_in_process": in_process,
    }
    return finish(result, started)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result["results"]
    names = ["body_30mb_reply", "context_6mb_reply", "others_baseline", "others_under_attack"]
    medians = [r[n]["median_s"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(names)), medians, color=["#c63", "#c93", "#888", "#36c"])
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("median seconds")
    ax.set_title(f"oversized requests refused (413) vs other clients' latency "
                 f"(ratio {r['others_median_ratio_attack_over_baseline']}x)", fontsize=9)
    for i, value in enumerate(medians):
        ax.text(i, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12, help="questions per client per phase")
    parser.add_argument("--port", type=int, default=int(os.environ.get("KVFLEET_E2E_PORT", "8131")))
    args = parser.parse_args()
    result = run(args.repeats, args.port)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "untrusted_input.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result["results"], indent=2))


if __name__ == "__main__":
    main()
