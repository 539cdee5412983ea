"""Answers of a Responses chain compressed with the default press vs an uncompressed chain, on the
quality benchmark's chat set, in one run: ``python -m benchmarks.responses_quality [--port 8150]``.

Issue 25's quality goal: answers at temperature 0 match an uncompressed chain on the quality
benchmark's chat set (benchmarks/quality_chat.py, the seeds and 512-token length of
benchmarks/results/press_quality.json) within the default press's measured loss there.

One Ray cluster, two 1-replica applications one after the other (CPU, 1 torch thread), the same
except for the press their chains are compressed with: ``default`` (AppConfig's default press,
compactor 0.25 with min_tokens 284 today; the committed run used kvzip 0.5, the default then) and ``none`` (uncompressed). Both store responses and re-compress
a chain's history past ``responses.compress_after_tokens``, set to 256 here so the 512-token
conversations of the chat set go through the press (the default, 1024, is for longer chains).
Per conversation of the set, the same chain on each application:

1. turn 1: the conversation's user messages as input items (answer cut at 4 tokens);
2. turn 2, ``previous_response_id`` = turn 1: "That is all ..." - its stored response is the
   first whose history passed the threshold, so it re-prefills turn 1 under the chain's press
   and keeps its own turn whole (deployments/ingress/responses/state.py);
3. each question, ``previous_response_id`` = turn 2 (a branch, ``store: false``): greedy, 20
   tokens, scored with the quality benchmark's exact match (quality_tasks.exact_match). The
   Responses API has no ``stop``; the score reads the first code / option word as there.

Reported: accuracy per chain, the ratio default / none, the fraction of identical answers, and the
default press's measured relative accuracy on the chat set (press_quality.json ``summary``);
goal met when the ratio is at least that. Writes ``benchmarks/results/responses_quality.json``
and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.provenance import RESULTS_DIR, finish, provenance

CONTEXT_TOKENS = 512                   # press_quality.json config.context_tokens
CHAT_SEEDS = (0, 1, 2, 3, 4, 5)        # press_quality.json config.chat_seeds
COMPRESS_AFTER_TOKENS = 256
TURN_TOKENS, ANSWER_TOKENS = 4, 20
CLOSE = "That is all about my week. Now I will ask you some questions."


def measured_relative(press: dict) -> float | None:
    """The press's accuracy relative to uncompressed on the chat set in press_quality.json (None if absent)."""
    summary = json.loads((RESULTS_DIR / "press_quality.json").read_text())["summary"]
    row = next((r for r in summary if r["press"] == press["name"]
                and abs(r["compression_ratio"] - press.get("compression_ratio", 0.0)) < 1e-9), None)
    return None if row is None else row["relative_by_set"]["chat"]


def chat_set() -> list[Any]:
    from transformers import AutoTokenizer

    from benchmarks.quality_sets import build_documents
    from deployments.engine.model_loader import prepare_embedded_model

    tokenizer = AutoTokenizer.from_pretrained(prepare_embedded_model(progress=False)[0])
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    return build_documents(["chat"], list(CHAT_SEEDS), CONTEXT_TOKENS, count)


def chain(client: Any, model: str, doc: Any) -> dict[str, Any]:
    """One conversation of the set as a chain; its questions answered on the compressed history."""
    from benchmarks.quality_tasks import exact_match

    first = client.responses.create(model=model, input=list(doc.context), temperature=0, max_output_tokens=TURN_TOKENS)
    second = client.responses.create(model=model, input=CLOSE, previous_response_id=first.id, temperature=0,
                                     max_output_tokens=TURN_TOKENS)
    answers = []
    for item in doc.items:
        reply = client.responses.create(model=model, input=item.question, previous_response_id=second.id,
                                        temperature=0, max_output_tokens=ANSWER_TOKENS, store=False)
        answers.append({"question": item.question, "expected": item.answer, "answer": reply.output_text,
                        "correct": exact_match(reply.output_text, item.answer, item.kind),
                        "cached_tokens": reply.usage.input_tokens_details.cached_tokens})
    return {"doc_id": doc.doc_id, "history_tokens": first.usage.input_tokens, "answers": answers}


def run_chains(port: int, press: dict, docs: list[Any], label: str) -> list[dict[str, Any]]:
    from openai import OpenAI

    from tests.serving import MODEL, serve_app, small_args

    args = small_args(replicas={"count": 1}, default_press=press,
                      responses={"compress_after_tokens": COMPRESS_AFTER_TOKENS})
    with serve_app(port, args, name=f"responses-quality-{label}", route_prefix="/", timeout_s=900) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=900)
        out = []
        for doc in docs:
            out.append(chain(client, MODEL, doc))
            right = sum(a["correct"] for a in out[-1]["answers"])
            print(f"{label}: {doc.doc_id} {right}/{len(doc.items)}", flush=True)
        return out


def run(port: int) -> dict:
    from deployments.config import AppConfig
    from tests.serving import ray_cluster

    started = time.perf_counter()
    default = AppConfig().default_press.model_dump(mode="json", exclude_none=True)
    docs = chat_set()
    result = provenance({"context_tokens": CONTEXT_TOKENS, "chat_seeds": list(CHAT_SEEDS),
                         "compress_after_tokens": COMPRESS_AFTER_TOKENS, "turn_tokens": TURN_TOKENS,
                         "answer_tokens": ANSWER_TOKENS, "replicas": 1, "default_press": default})
    chains: dict[str, list[dict[str, Any]]] = {}
    with ray_cluster(num_cpus=3):
        for label, press in (("none", {"name": "none", "compression_ratio": 0.0}), ("default", default)):
            chains[label] = run_chains(port, press, docs, label)
    def accuracy(label: str) -> float:
        answers = [a for c in chains[label] for a in c["answers"]]
        return sum(a["correct"] for a in answers) / len(answers)
    pairs = [(a, b) for x, y in zip(chains["default"], chains["none"]) for a, b in zip(x["answers"], y["answers"])]
    none_acc, default_acc = accuracy("none"), accuracy("default")
    ratio = default_acc / none_acc if none_acc else None
    measured = measured_relative(default)
    result["results"] = {
        "chains": chains, "questions": len(pairs),
        "accuracy": {"none": round(none_acc, 4), "default": round(default_acc, 4)},
        "relative_default_over_none": None if ratio is None else round(ratio, 4),
        "answers_identical": round(sum(a["answer"] == b["answer"] for a, b in pairs) / len(pairs), 4),
        "measured_relative_chat": measured,
        "goal_met": ratio is not None and measured is not None and ratio >= measured,
    }
    return finish(result, started)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result["results"]
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = ["uncompressed chain", "default-press chain"]
    values = [r["accuracy"]["none"], r["accuracy"]["default"]]
    ax.bar(labels, values, color=["#999", "#36c"])
    if r["measured_relative_chat"] is not None:
        ax.axhline(r["accuracy"]["none"] * r["measured_relative_chat"], color="#c33", linestyle="--",
                   label=f"uncompressed x press_quality's chat relative ({r['measured_relative_chat']:.3f})")
        ax.legend(fontsize=8, loc="lower right")
    for x, v in enumerate(values):
        ax.text(x, v + 0.01, f"{v:.3f}", ha="center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("exact-match accuracy, chat set")
    ratio = r["relative_default_over_none"]
    press = result["config"]["default_press"] if "config" in result else {}
    fig.suptitle(f"Responses chains on the chat set ({r['questions']} questions): {press.get('name', 'default')} "
                 f"/ none = {ratio if ratio is None else f'{ratio:.3f}'}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8150)
    args = parser.parse_args()
    result = run(args.port)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "responses_quality.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result["results"].items() if k != "chains"}, indent=2))


if __name__ == "__main__":
    main()
