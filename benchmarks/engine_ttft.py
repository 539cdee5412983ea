"""Engine benchmark (issue 3): stored-cache TTFT vs re-prefill, bytes per press x ratio, model load.

No Ray, no HTTP: one KVEngine in this process (``--threads`` torch threads, 1 = a replica's
default), the embedded SmolLM2-135M model, float32 on CPU.

1. TTFT of a ~20-token question at each context length (default 1k, 2k, 4k tokens of needle
   prose from ``quality_tasks``), three variants measured in interleaved rounds:
   - ``stored_compressed``: first token from a stored cache pruned with ``--press`` (knorm 0.5),
   - ``stored_full``: first token from a stored uncompressed cache,
   - ``reprefill``: prefill context + question from scratch (no press), first token - what a
     server without a stored cache does for every question.
   Each round takes one re-prefill sample and ``STORED_CALLS`` samples of each stored variant.
   Reported: median / p95 per variant, and the median over rounds of reprefill / (the round's
   median stored TTFT).
2. Bytes per session for each press x ratio at ``--bytes-tokens`` context tokens (codec none and
   int8), from real prefills (``CompressedKV.nbytes``, ragged storage for per-head presses).
3. Model load: ``first`` = convert the embedded GGUF into a fresh temporary cache dir and load it
   (``ModelConfig(cache_dir=...)``), ``cached`` = load the converted copy again; interleaved.

    python benchmarks/engine_ttft.py                       # ~6 min on the 2-core CPU machine
    python benchmarks/engine_ttft.py --lengths 1024 --repeats 2 --load-repeats 1 --presses knorm

Writes benchmarks/results/engine_ttft.json and engine_ttft.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.press_grid import RATIOS, press_spec  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.quality_tasks import needle_document  # noqa: E402
from benchmarks.timing import interleaved, paired_ratios, round_medians, summarize  # noqa: E402

QUESTION = "Please read the document again and answer exactly: {question}"
STORED_CALLS = 5  # stored-cache TTFT samples per round (cheap) next to one re-prefill (expensive)
BYTES_PRESSES = ("knorm", "snapkv", "streaming_llm", "expected_attention", "adakv(snapkv)", "kvzip")


def _log(message: str) -> None:
    print(f"[engine_ttft {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_engine(threads: int):
    """(KVEngine, load seconds) for the embedded model on CPU with ``threads`` torch threads."""
    import torch

    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import ModelConfig, load_model

    torch.set_num_threads(threads)
    config = ModelConfig()
    loaded = load_model(config)
    return KVEngine(loaded, config.name), loaded.load_s


def token_counter(engine):
    return lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False))


def first_token_s(engine, ckv, question: str) -> float:
    """Seconds from the call to the first generated token (greedy) on a stored cache."""
    from deployments.engine.sampling import SamplingParams

    start = time.perf_counter()
    stream = engine.generate(ckv, question, SamplingParams(max_tokens=1))
    next(stream)
    elapsed = time.perf_counter() - start
    stream.close()
    return elapsed


def measure_ttft(engine, lengths: list[int], repeats: int, press: dict) -> list[dict[str, Any]]:
    """Interleaved TTFT rounds per context length (see the module docstring)."""
    from kvpool import PressSpec

    spec = PressSpec.model_validate(press)
    rows = []
    for length in lengths:
        doc = needle_document(seed=length, target_tokens=length, count=token_counter(engine))
        question = QUESTION.format(question=doc.items[len(doc.items) // 2].question)
        compressed = engine.prefill(doc.context, spec)
        full = engine.prefill(doc.context, PressSpec())
        question_tokens = len(engine.question_ids(full, question))
        samples = interleaved({
            "stored_compressed": lambda: first_token_s(engine, compressed, question),
            "stored_full": lambda: first_token_s(engine, full, question),
            "reprefill": lambda: first_token_s(engine, engine.prefill(doc.context, PressSpec()), question),
        }, repeats, progress=lambda m, n=length: _log(f"{n} tokens {m}"),
            calls_per_round={"stored_compressed": STORED_CALLS, "stored_full": STORED_CALLS})
        per_round = {name: round_medians(samples[name], STORED_CALLS) for name in ("stored_compressed", "stored_full")}
        row = {"context_tokens": full.meta.original_tokens, "target_tokens": length,
               "question_tokens": question_tokens, "press": press,
               **{name: summarize(values) for name, values in samples.items()},
               "samples_s": samples,
               "speedup_reprefill_over_stored_compressed": summarize(
                   paired_ratios(samples["reprefill"], per_round["stored_compressed"]), unit="x"),
               "speedup_reprefill_over_stored_full": summarize(
                   paired_ratios(samples["reprefill"], per_round["stored_full"]), unit="x")}
        rows.append(row)
        _log(f"{row['context_tokens']} tokens: stored {row['stored_compressed']['median_s']:.3f} s, "
             f"reprefill {row['reprefill']['median_s']:.3f} s, "
             f"speedup {row['speedup_reprefill_over_stored_compressed']['median_x']:.1f}x")
    return rows


def measure_bytes(engine, presses: list[str], ratios: list[float], tokens: int) -> list[dict[str, Any]]:
    """Bytes of a real cache per press x ratio (codec none and int8) at ``tokens`` context tokens."""
    from kvpool import PressSpec, codecs

    doc = needle_document(seed=7, target_tokens=tokens, count=token_counter(engine))
    rows, baseline = [], None
    for label in presses:
        for ratio in ratios:
            spec = press_spec(label, ratio)
            prefill_s = None
            if ratio == 0 and baseline is not None:
                ckv = baseline
            else:
                start = time.perf_counter()
                ckv = engine.prefill(doc.context, PressSpec.model_validate(spec))
                prefill_s = time.perf_counter() - start
            if ratio == 0:
                baseline = ckv
            int8_bytes = codecs.encode(ckv, "int8").nbytes
            rows.append({"press": label, "compression_ratio": ratio, "spec": spec,
                         "context_tokens": ckv.meta.original_tokens, "kept_tokens_per_head": ckv.meta.kept_tokens,
                         "bytes": ckv.nbytes, "bytes_int8": int8_bytes, "ragged": ckv.is_ragged,
                         "bytes_per_context_token": ckv.nbytes / ckv.meta.original_tokens,
                         "prefill_s": None if prefill_s is None else round(prefill_s, 3)})
            _log(f"bytes {label} r={ratio}: {ckv.nbytes / 2**20:.2f} MiB (int8 {int8_bytes / 2**20:.2f} MiB)")
    full = next(r["bytes"] for r in rows if r["compression_ratio"] == 0)
    for row in rows:
        row["fraction_of_uncompressed"] = row["bytes"] / full
    return rows


def measure_model_load(repeats: int) -> dict[str, Any]:
    """First load (GGUF conversion into a fresh cache dir) vs cached load, interleaved."""
    from deployments.engine.model_loader import ModelConfig, load_model

    with tempfile.TemporaryDirectory(prefix="kvfleet-load-bench-") as root:
        counter = iter(range(1_000_000))
        cached_dir = Path(root) / "cached"
        load_model(ModelConfig(cache_dir=str(cached_dir)))  # converted once, reused by "cached"

        def first() -> None:
            loaded = load_model(ModelConfig(cache_dir=str(Path(root) / f"fresh-{next(counter)}")))
            if not loaded.converted:
                raise RuntimeError("a fresh cache dir did not convert the GGUF; the first-load figure would be wrong")

        def cached() -> None:
            if load_model(ModelConfig(cache_dir=str(cached_dir))).converted:
                raise RuntimeError("the cached load converted again")

        samples = interleaved({"first": first, "cached": cached}, repeats,
                              progress=lambda m: _log(f"model load {m}"))
    return {"first": summarize(samples["first"]), "cached": summarize(samples["cached"]), "samples_s": samples,
            "first_over_cached_median_x": summarize(paired_ratios(samples["first"], samples["cached"]), "x")}


def plot(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 4.8))
    FigureCanvasAgg(figure)
    ttft_ax, bytes_ax, load_ax = figure.subplots(1, 3)
    rows = result["ttft"]
    for name, marker in (("reprefill", "s"), ("stored_full", "^"), ("stored_compressed", "o")):
        x = [r["context_tokens"] for r in rows]
        med = [r[name]["median_s"] for r in rows]
        p95 = [r[name]["p95_s"] for r in rows]
        ttft_ax.errorbar(x, med, yerr=[[0] * len(med), [p - m for p, m in zip(p95, med)]], marker=marker,
                         capsize=3, label=f"{name} (median, bar to p95)")
    for r in rows:
        ttft_ax.annotate(f"{r['speedup_reprefill_over_stored_compressed']['median_x']:.0f}x",
                         (r["context_tokens"], r["stored_compressed"]["median_s"]), textcoords="offset points",
                         xytext=(4, -12), fontsize=8)
    ttft_ax.set_yscale("log")
    ttft_ax.set_xlabel("context tokens")
    ttft_ax.set_ylabel("TTFT (s, log)")
    ttft_ax.set_title(f"TTFT of a {rows[0]['question_tokens']}-token question" if rows else "TTFT")
    ttft_ax.legend(fontsize=7)

    presses = sorted({r["press"] for r in result["bytes"]}, key=[r["press"] for r in result["bytes"]].index)
    for label in presses:
        sub = [r for r in result["bytes"] if r["press"] == label]
        line, = bytes_ax.plot([r["compression_ratio"] for r in sub], [r["bytes"] / 2**20 for r in sub], marker="o",
                              label=label)
        bytes_ax.plot([r["compression_ratio"] for r in sub], [r["bytes_int8"] / 2**20 for r in sub], ":",
                      color=line.get_color())
    ratios = sorted({r["compression_ratio"] for r in result["bytes"]})
    full = next(r["bytes"] for r in result["bytes"] if r["compression_ratio"] == 0) / 2**20
    bytes_ax.plot(ratios, [full * (1 - r) for r in ratios], "k--", linewidth=0.8, label="(1 - r) x uncompressed")
    bytes_ax.set_xlabel("compression ratio (dotted: int8 codec)")
    bytes_ax.set_ylabel("MiB per session")
    bytes_ax.set_title(f"Bytes per session, {result['config']['bytes_tokens']}-token context")
    bytes_ax.legend(fontsize=7)

    load = result["model_load"]
    if load:
        names = ["first", "cached"]
        load_ax.bar(names, [load[n]["median_s"] for n in names],
                    yerr=[[0, 0], [load[n]["p95_s"] - load[n]["median_s"] for n in names]], capsize=4,
                    color=["tab:red", "tab:green"])
        load_ax.set_ylabel("seconds (median, bar to p95)")
        load_ax.set_title("Model load: GGUF conversion vs cached copy")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run(lengths: list[int], repeats: int, presses: list[str], ratios: list[float], bytes_tokens: int,
        load_repeats: int, threads: int, press: dict) -> dict[str, Any]:
    """The whole benchmark; returns the result dict (not written)."""
    config = {"lengths": lengths, "repeats": repeats, "presses": presses, "ratios": ratios,
              "bytes_tokens": bytes_tokens, "load_repeats": load_repeats, "threads": threads, "press": press,
              "question_template": QUESTION, "dtype": "float32", "device": "cpu"}
    result: dict[str, Any] = {"benchmark": "engine_ttft", **provenance(config)}
    started = time.perf_counter()
    engine, load_s = load_engine(threads)
    _log(f"engine loaded in {load_s:.1f} s with {threads} torch thread(s)")
    result["ttft"] = measure_ttft(engine, lengths, repeats, press)
    result["bytes"] = measure_bytes(engine, presses, ratios, bytes_tokens)
    result["model_load"] = measure_model_load(load_repeats) if load_repeats > 0 else None
    return finish(result, started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved TTFT rounds per length")
    parser.add_argument("--presses", nargs="+", default=list(BYTES_PRESSES))
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    parser.add_argument("--bytes-tokens", type=int, default=1024, help="context tokens for the bytes sweep")
    parser.add_argument("--load-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a replica uses 1)")
    parser.add_argument("--press", type=json.loads, default={"name": "knorm", "compression_ratio": 0.5},
                        help="press of the stored compressed cache (PressSpec JSON)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "engine_ttft.json")
    args = parser.parse_args(argv)
    result = run(args.lengths, args.repeats, args.presses, args.ratios, args.bytes_tokens, args.load_repeats,
                 args.threads, args.press)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(result, args.out.with_suffix(".png"))
    _log(f"wrote {args.out} and {args.out.with_suffix('.png')} in {result['runtime_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
