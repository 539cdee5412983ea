"""Time to first token of a question joining a stored cache, in the decode loop (issue 26).

The TTFT that matters most to kvfleet - a new question on a stored document - is one join of the
continuous-batching loop (deployments/engine/decode): the stored cache is copied into the row's
buffers and the question (~19 tokens) is prefilled over it, with a causal mask. This measures
that join in process (no Ray, no HTTP; 1 torch thread, bfloat16 as ``auto`` picks here) on a
~``--tokens``-token document stored under the default press, for three variants in interleaved
rounds:

- ``transformers``: transformers' SDPA rule (a masked call copies every KV head 3x: ``repeat_kv``)
  and the row built by ``RowKV.from_layers`` (a padded copy, then a second copy with room);
- ``gqa``: masked CPU SDPA through ``enable_gqa`` (deployments/engine/sdpa_gqa.py), same copies;
- ``gqa+adopt``: also the cache padded once straight into the row's buffers (``RowKV.adopt``) -
  what kvfleet runs.

    python benchmarks/join_ttft.py            # ~2 min; writes benchmarks/results/join_ttft.{json,png}
    python benchmarks/join_ttft.py --decode-profile    # also: where a one-row decode step goes (cProfile)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers.integrations import sdpa_attention  # noqa: E402

from benchmarks.peer_llamacpp import document  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, provenance  # noqa: E402
from deployments.config import AppConfig  # noqa: E402
from deployments.engine.decode import BatchConfig, DecodeLoop  # noqa: E402
from deployments.engine.decode.row_kv import RowKV  # noqa: E402
from deployments.engine.decode.runner import SPARE_TOKENS, BatchRunner  # noqa: E402
from deployments.engine.engine import KVEngine  # noqa: E402
from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model  # noqa: E402
from deployments.engine.sampling import SamplingParams  # noqa: E402

ADOPT = BatchRunner._row_kv


def copied_twice(self, w):
    """The row as it was built before ``RowKV.adopt``: padded copy, then a copy with room."""
    pairs, masked = self.engine.decode_layers(w.ckv)
    return RowKV.from_layers([k for k, _ in pairs], [v for _, v in pairs], masked,
                             spare=len(w.input_ids) + min(w.max_tokens, SPARE_TOKENS))


def variant(name: str, gqa_rule) -> None:
    """Switch the process to ``name``'s attention rule (``gqa_rule``: kvfleet's installed one) and join copy."""
    sdpa_attention.use_gqa_in_sdpa = gqa_rule.kvfleet_inner if name == "transformers" else gqa_rule
    BatchRunner._row_kv = ADOPT if name == "gqa+adopt" else copied_twice


def first_token_s(loop: DecodeLoop, ckv, ids: list[int]) -> float:
    done, start, seen = threading.Event(), time.perf_counter(), []

    def deliver(item) -> None:
        if not seen:
            seen.append(time.perf_counter() - start)
            done.set()

    loop.submit(ckv, ids, SamplingParams(max_tokens=1), deliver)
    if not done.wait(120):
        raise TimeoutError("no first token in 120 s")
    return seen[0]


def decode_profile(loop: DecodeLoop, ckv, ids: list[int], tokens: int = 40) -> None:
    """Print the calls that take a one-row decode step's time (the loop thread's ``BatchRunner.run``)."""
    import cProfile
    import pstats

    profiler, run = cProfile.Profile(), BatchRunner.run

    def profiled(self, step, work):
        profiler.enable()
        try:
            return run(self, step, work)
        finally:
            profiler.disable()

    done = threading.Event()
    BatchRunner.run = profiled
    try:
        start = time.perf_counter()
        loop.submit(ckv, ids, SamplingParams(max_tokens=tokens, ignore_eos=True),
                    lambda item: done.set() if getattr(item, "finish_reason", None) else None)
        done.wait(300)
        print(f"{tokens} tokens in {time.perf_counter() - start:.2f} s")
    finally:
        BatchRunner.run = run
    pstats.Stats(profiler).sort_stats("tottime").print_stats(8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--decode-profile", action="store_true",
                        help="after the rounds, decode 40 tokens of one row under cProfile and print the top calls")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "join_ttft.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(ModelConfig())
    gqa_rule = sdpa_attention.use_gqa_in_sdpa  # installed by load_model (deployments/engine/sdpa_gqa.py)
    engine = KVEngine(loaded, EMBEDDED_MODEL_ID)
    press = AppConfig().default_press
    text, questions = document(args.tokens, 1)
    ckv = engine.prefill([{"role": "user", "content": text}], press)
    ids = engine.question_ids(ckv, [{"role": "user", "content": questions[1]}])
    names = ["transformers", "gqa", "gqa+adopt"]
    loop = DecodeLoop(engine, BatchConfig())
    samples: dict[str, list[float]] = {n: [] for n in names}
    try:
        for n in names:  # warm-up
            variant(n, gqa_rule)
            first_token_s(loop, ckv, ids)
        for r in range(args.rounds):
            for n in names if r % 2 == 0 else names[::-1]:
                variant(n, gqa_rule)
                samples[n].append(first_token_s(loop, ckv, ids))
        if args.decode_profile:
            variant("gqa+adopt", gqa_rule)
            decode_profile(loop, ckv, ids)
    finally:
        variant("gqa+adopt", gqa_rule)
        loop.close()
    rows = [{"variant": n, "ttft_median_ms": round(1000 * statistics.median(s), 1),
             "ttft_ms": [round(1000 * x, 1) for x in s]} for n, s in samples.items()]
    base = rows[0]["ttft_median_ms"]
    for row in rows:
        row["vs_transformers"] = round(base / row["ttft_median_ms"], 2)
        print(json.dumps({k: v for k, v in row.items() if k != "ttft_ms"}))
    result = {"provenance": provenance({"tokens": args.tokens, "rounds": args.rounds, "threads": 1,
                                        "dtype": loaded.dtype.name, "press": press.model_dump(mode="json"),
                                        "kept_tokens": ckv.meta.kept_tokens, "context_tokens": ckv.meta.original_tokens,
                                        "question_tokens": len(ids)}), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(rows, args.out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([r["variant"] for r in rows], [r["ttft_median_ms"] for r in rows])
    ax.set_ylabel("TTFT of a joining question, ms (median)")
    ax.set_title("question on a stored ~3k-token cache, decode loop, 1 thread")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
