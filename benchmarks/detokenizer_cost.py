"""Cost of exact streaming detokenization per generated token, against one model decode step.

``StreamingDetokenizer.push`` re-decodes the reply so far (exact by construction: the text is
always ``decode(ids, clean_up_tokenization_spaces=False)``), so its per-token cost grows with the
reply length. This measures it on the real SmolLM2 tokenizer for replies of several lengths, and
the embedded model's own decode step (one token on a stored cache, CPU, 1 torch thread) in the
same run, and reports their ratio.

    python benchmarks/detokenizer_cost.py
    python benchmarks/detokenizer_cost.py --lengths 128 1024 4096 --stops 4

Writes benchmarks/results/detokenizer_cost.json and .png.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"


def push_cost_us(tok, ids: list[int], stops: tuple[str, ...]) -> float:
    """Mean microseconds per ``push`` over one whole reply of ``ids``."""
    from deployments.engine.detokenizer import StreamingDetokenizer

    detok = StreamingDetokenizer(tok, stops)
    start = time.perf_counter()
    for token_id in ids:
        detok.push(token_id)
    detok.flush()
    return (time.perf_counter() - start) / len(ids) * 1e6


def decode_step_us(steps: int) -> float:
    """Mean microseconds of one greedy decode step of the embedded model on a short stored cache."""
    import torch

    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model
    from deployments.engine.sampling import SamplingParams
    from kvpool import PressSpec

    torch.set_num_threads(1)
    engine = KVEngine(load_model(ModelConfig()), EMBEDDED_MODEL_ID)
    ckv = engine.prefill("The committee discussed the annual budget. " * 20, PressSpec())
    params = SamplingParams(max_tokens=steps, temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    produced = sum(1 for step in engine.generate(ckv, "Tell me about the committee.", params) if step.token)
    return (time.perf_counter() - start) / produced * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--stops", type=int, default=2, help="stop strings per request")
    parser.add_argument("--decode-steps", type=int, default=64)
    args = parser.parse_args()

    from tests.unit.engine.tokenizer_fixtures import TRICKY_TEXTS, embedded_tokenizer

    tok = embedded_tokenizer()
    pool = [i for text in TRICKY_TEXTS for i in tok.encode(text, add_special_tokens=False)]
    rng = random.Random(0)
    stops = tuple(["\u2603never", "zz-stop", "###", "<end>"][:args.stops])
    rows = []
    for length in args.lengths:
        ids = [rng.choice(pool) for _ in range(length)]
        rows.append({"reply_tokens": length, "push_us_per_token": round(push_cost_us(tok, ids, stops), 1)})
    step_us = decode_step_us(args.decode_steps)
    for row in rows:
        row["ratio_to_decode_step"] = round(row["push_us_per_token"] / step_us, 4)
    result = {"benchmark": "detokenizer_cost", "decode_step_us": round(step_us, 1), "stops": len(stops),
              "rows": rows, "machine": {"python": platform.python_version(), "processor": platform.processor()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detokenizer_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result)
    print(json.dumps(result, indent=2))


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["reply_tokens"] for r in result["rows"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [r["ratio_to_decode_step"] for r in result["rows"]], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("reply length (tokens)")
    ax.set_ylabel("detokenize / decode step")
    ax.set_title(f"exact streaming detokenization, per token (decode step {result['decode_step_us'] / 1000:.1f} ms)")
    fig.tight_layout()
    fig.savefig(RESULTS / "detokenizer_cost.png", dpi=110)


if __name__ == "__main__":
    main()
