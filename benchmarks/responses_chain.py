"""A conversation continued by ``previous_response_id`` vs re-sending its whole history, in one run:
``python -m benchmarks.responses_chain [--turns 10] [--doc-repeats 180] [--port 8150]``.

One 1-replica application (CPU, 1 torch thread, knorm 0.5 as the default press, plain prefix cache
on). The same 10-turn conversation about one ~3k-token document is held twice, turn by turn
interleaved so both see the same machine load:

- ``responses``: turn 1 sends the document + question to ``POST /v1/responses``; every later turn
  sends only its question with ``previous_response_id`` (the stored KV cache of the conversation);
- ``chat``: every turn re-sends the whole history (document, questions, previous answers) as a
  plain ``POST /v1/chat/completions`` - the plain prefix cache reuses stored compressed prefixes.

Per turn and path: TTFT (streaming, to the first text delta), prefilled tokens (``input_tokens -
cached_tokens`` / ``prompt_tokens - cached_tokens``) and the answer. Goal (issue 25): turn 10
prefills only its new tokens and its TTFT is >= 5x lower than re-sending. Greedy, 24 tokens.

Writes ``benchmarks/results/responses_chain.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.provenance import RESULTS_DIR, finish, provenance

MAX_TOKENS = 24
QUESTIONS = ("What is the secret code of the vault?", "Where was Alice born?", "When is the meeting?",
             "Who discussed the budget?", "What else did the committee discuss?", "Repeat the vault code.",
             "Is the meeting in the morning?", "Name the city again.", "Summarise the document in five words.",
             "What was the first thing I asked?")


def document(repeats: int) -> str:
    from tests.conftest import document as facts_document

    return facts_document(repeats)


def responses_turn(client: Any, model: str, text: str, previous: str | None) -> dict[str, Any]:
    start = time.perf_counter()
    ttft, final = None, None
    for event in client.responses.create(model=model, input=text, previous_response_id=previous, temperature=0,
                                         max_output_tokens=MAX_TOKENS, stream=True):
        if ttft is None and event.type == "response.output_text.delta" and event.delta:
            ttft = time.perf_counter() - start
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    if ttft is None or final is None:
        raise RuntimeError("the responses stream had no text or no final response")
    usage = final.usage
    return {"ttft_s": ttft, "id": final.id, "answer": final.output_text, "input_tokens": usage.input_tokens,
            "cached_tokens": usage.input_tokens_details.cached_tokens,
            "prefilled_tokens": usage.input_tokens - usage.input_tokens_details.cached_tokens}


def chat_turn(client: Any, model: str, messages: list[dict]) -> dict[str, Any]:
    start = time.perf_counter()
    ttft, usage, text = None, None, []
    for chunk in client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=MAX_TOKENS,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            ttft = ttft or time.perf_counter() - start
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    if ttft is None or usage is None:
        raise RuntimeError("the chat stream had no text or no usage")
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    return {"ttft_s": ttft, "answer": "".join(text), "input_tokens": usage.prompt_tokens, "cached_tokens": cached,
            "prefilled_tokens": usage.prompt_tokens - cached}


def conversation(url: str, doc: str, turns: int) -> dict[str, list[dict[str, Any]]]:
    from openai import OpenAI

    from tests.serving import MODEL

    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=900)
    out: dict[str, list[dict[str, Any]]] = {"responses": [], "chat": []}
    previous: str | None = None
    messages: list[dict] = []
    for k in range(turns):
        question = QUESTIONS[k % len(QUESTIONS)]
        text = f"{doc}\n{question}" if k == 0 else question
        turn = responses_turn(client, MODEL, text, previous)
        previous = turn["id"]
        out["responses"].append({"turn": k + 1, **turn})
        messages.append({"role": "user", "content": text})
        chat = chat_turn(client, MODEL, messages)
        messages.append({"role": "assistant", "content": chat["answer"]})
        out["chat"].append({"turn": k + 1, **chat})
        print(f"turn {k + 1}: responses ttft {turn['ttft_s']:.3f}s prefilled {turn['prefilled_tokens']} | "
              f"chat ttft {chat['ttft_s']:.3f}s prefilled {chat['prefilled_tokens']}", flush=True)
    return out


def run(turns: int, doc_repeats: int, port: int) -> dict:
    from tests.serving import ray_cluster, serve_app, small_args

    started = time.perf_counter()
    doc = document(doc_repeats)
    result = provenance({"turns": turns, "doc_repeats": doc_repeats, "max_tokens": MAX_TOKENS, "replicas": 1,
                         "press": {"name": "knorm", "compression_ratio": 0.5}, "prefix_cache": True})
    with ray_cluster(num_cpus=3):
        args = small_args(replicas={"count": 1}, limits={"max_context_tokens": 8000})
        with serve_app(port, args, name="responses-chain", route_prefix="/", timeout_s=900) as url:
            conversation(url, "A short warm-up note.", 2)  # load both paths once
            records = conversation(url, doc, turns)
    last_r, last_c = records["responses"][-1], records["chat"][-1]
    result["results"] = {
        **records,
        "document_tokens": records["responses"][0]["input_tokens"],
        "turn_last": {"responses_ttft_s": last_r["ttft_s"], "chat_ttft_s": last_c["ttft_s"],
                      "ttft_ratio_chat_over_responses": last_c["ttft_s"] / last_r["ttft_s"],
                      "responses_prefilled_tokens": last_r["prefilled_tokens"],
                      "chat_prefilled_tokens": last_c["prefilled_tokens"]},
        "goal_ttft_ratio": 5.0,
        "goal_met": last_c["ttft_s"] / last_r["ttft_s"] >= 5.0 and last_r["prefilled_tokens"] < 40,
        "answers_equal_per_turn": [r["answer"] == c["answer"] for r, c in zip(records["responses"], records["chat"])],
    }
    return finish(result, started)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result["results"]
    turns = [x["turn"] for x in r["responses"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, colour in (("chat", "re-send history (chat, prefix cache)", "#999"),
                               ("responses", "previous_response_id (stored KV)", "#36c")):
        left.plot(turns, [x["ttft_s"] for x in r[key]], marker="o", label=label, color=colour)
        right.plot(turns, [x["prefilled_tokens"] for x in r[key]], marker="o", label=label, color=colour)
    left.set_xlabel("turn")
    left.set_ylabel("TTFT seconds")
    left.set_yscale("log")
    right.set_xlabel("turn")
    right.set_ylabel("tokens prefilled this turn")
    right.set_yscale("log")
    left.legend(fontsize=8)
    last = r["turn_last"]
    fig.suptitle(f"{len(turns)}-turn conversation over a {r['document_tokens']}-token document (CPU, 1 replica): "
                 f"turn {turns[-1]} TTFT {last['ttft_ratio_chat_over_responses']:.1f}x lower")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--doc-repeats", type=int, default=180, help="filler sentences (~17 tokens each)")
    parser.add_argument("--port", type=int, default=8150)
    args = parser.parse_args()
    result = run(args.turns, args.doc_repeats, args.port)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "responses_chain.json"
    out.write_text(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))
    print(json.dumps({k: v for k, v in result["results"].items() if k not in ("responses", "chat")}, indent=2))


if __name__ == "__main__":
    main()
