"""LiteLLM routing over two kvfleet deployments: what the router costs per question, and what a
failover costs. ``python -m benchmarks.litellm_routing [--repeats 10] [--port 8130]``.

Two 1-replica kvfleet applications on one Ray cluster (``/ba``, ``/bb``), a real ``litellm.Router``
with kvfleet's session-affinity strategy (KvfleetRouterClient, in-memory directory), 4 sessions.

- ``question_direct`` vs ``question_routed``: the same session question asked on the home app with
  the openai client, and through the router (interleaved rounds; per-round ratio reported).
- ``failover_first_question``: after ``serve.delete`` of one app, the first question on each of its
  sessions (health probe, rebuild by one prefill on the other app, answer); ``after_failover``: the
  next question on the same session.

Writes ``benchmarks/results/litellm_routing.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.provenance import RESULTS_DIR, finish, provenance
from benchmarks.timing import interleaved, paired_ratios, summarize

MAX_TOKENS = 8


def run(repeats: int, port: int) -> dict:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from openai import OpenAI
    from ray import serve

    from deployments.litellm_router import KvfleetRouterClient, KvfleetRouterConfig
    from tests.e2e.litellm_support import session_context, user
    from tests.serving import MODEL, ray_cluster, serve_app, small_args

    started = time.perf_counter()
    result = provenance({"repeats": repeats, "max_tokens": MAX_TOKENS, "sessions": 4, "replicas_per_app": 1})
    with ray_cluster(num_cpus=4), \
            serve_app(port, small_args(replicas={"count": 1}), name="ba", route_prefix="/ba", timeout_s=900) as a, \
            serve_app(port, small_args(replicas={"count": 1}), name="bb", route_prefix="/bb", timeout_s=900) as b:
        urls = {"kvfleet-a": a, "kvfleet-b": b}
        model_list = [{"model_name": "kvfleet", "model_info": {"id": i},
                       "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{u}/v1", "api_key": "unused"}}
                      for i, u in urls.items()]
        client = KvfleetRouterClient.from_model_list(model_list, {"num_retries": 2, "retry_policy": {"NotFoundErrorRetries": 2}},
                                     KvfleetRouterConfig(directory={"store": "memory"}))
        loads = []
        sessions = []
        for i in range(4):
            t0 = time.perf_counter()
            sessions.append(client.create_session("kvfleet", session_context(i)))
            loads.append(time.perf_counter() - t0)
        direct = {i: OpenAI(base_url=f"{u}/v1", api_key="unused", max_retries=0, timeout=600) for i, u in urls.items()}
        s = sessions[0]
        question = user("What is the secret code of the vault?")

        def ask_direct() -> None:
            direct[s["router"]["home"]].chat.completions.create(
                model=MODEL, messages=question, temperature=0, max_tokens=MAX_TOKENS, extra_body={"session_id": s["id"]})

        def ask_routed() -> None:
            client.completion("kvfleet", question, session_id=s["id"], temperature=0, max_tokens=MAX_TOKENS)

        ask_direct(), ask_routed()  # warm both paths
        samples = interleaved({"question_direct": ask_direct, "question_routed": ask_routed}, repeats)
        serve.delete("ba")
        moved = [x for x in sessions if x["router"]["home"] == "kvfleet-a"]
        first, after = [], []
        for x in moved:
            t0 = time.perf_counter()
            client.completion("kvfleet", question, session_id=x["id"], temperature=0, max_tokens=MAX_TOKENS)
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.completion("kvfleet", question, session_id=x["id"], temperature=0, max_tokens=MAX_TOKENS)
            after.append(time.perf_counter() - t0)
        result["results"] = {
            "session_load": summarize(loads),
            "question_direct": summarize(samples["question_direct"]),
            "question_routed": summarize(samples["question_routed"]),
            "routed_over_direct_ratio": summarize(paired_ratios(samples["question_routed"],
                                                                samples["question_direct"]), unit="x"),
            "failover_first_question": summarize(first),
            "after_failover": summarize(after),
            "rebuilds": client.sessions.rebuilds,
            "health_probes": client.sessions.health.probes,
        }
    return finish(result, started)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result["results"]
    names = ["question_direct", "question_routed", "failover_first_question", "after_failover", "session_load"]
    medians = [r[n]["median_s"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(names)), medians, color=["#888", "#36c", "#c63", "#3a6", "#999"])
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set_ylabel("median seconds")
    ax.set_title(f"kvfleet behind litellm.Router ({MAX_TOKENS} tokens/answer, 2 deployments, CPU)")
    for i, value in enumerate(medians):
        ax.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--port", type=int, default=8130)
    args = parser.parse_args()
    result = run(args.repeats, args.port)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "litellm_routing.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result["results"], indent=2))


if __name__ == "__main__":
    main()
