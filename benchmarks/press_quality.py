"""Press quality in-process (no Ray): accuracy, bytes and load time per press x ratio, two question sets.

    python benchmarks/press_quality.py                      # the committed run (sized for <= 40 min on this shared 2-core machine, 1 thread)
    python benchmarks/press_quality.py --quick              # smoke run (2 presses, 1 ratio, 1 doc per set)

For every (press, ratio) and document of both question sets (``document``: needle + facts planted
in prose, ``chat``: facts told in a conversation, see quality_tasks / quality_chat) the engine
prefills the context under the press (the load time is that wall time), the bytes stored are the
CompressedKV's exact ``nbytes``, and every question is answered greedily (max 20 tokens, stop at
"." or newline) and scored by exact match. The uncompressed baseline is press ``none``.
A second sweep measures where a press stops costing accuracy on short contexts: the default press
at the default ratio vs uncompressed, on short needle documents (``--short-lengths``); the
default ``min_tokens`` comes from it (press_ranking.choose_min_tokens). A third loads one long
needle document (``--long-tokens``) under the best presses, each in its own process, for the load
time and peak memory the short documents hide; accuracy ties go to the faster long load.

Writes ``benchmarks/results/press_quality.json`` (after every configuration, so an interrupted
run keeps what it measured) and ``press_quality.png`` (accuracy vs load time at r = 0.5, and
accuracy vs ratio). Read ratios, not absolute times: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.press_grid import press_spec  # noqa: E402
from benchmarks.press_ranking import choose_min_tokens, long_context_loads, rank_presses, summarize  # noqa: E402
from benchmarks.quality_sets import QUESTION_SETS, build_documents  # noqa: E402
from benchmarks.quality_tasks import QADocument, exact_match, needle_document  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PRESSES = ("kvzip", "knorm", "expected_attention", "streaming_llm", "cap", "kvgrad", "snapkv", "pyramidkv", "finch")
RATIOS = (0.25, 0.5, 0.75)
FULL_RATIO_PRESSES = ("kvzip", "knorm")
STOP = (".", "\n")


def _agnostic_label(label: str) -> bool:
    from deployments.engine.presses import resolve
    from kvpool import PressSpec

    return resolve(PressSpec.model_validate(press_spec(label, 0.5))).query_agnostic


def _set_of(task: str) -> str:
    return next(name for name, tasks in QUESTION_SETS.items() if task in tasks)


def run_document(engine, doc: QADocument, spec: dict, max_tokens: int) -> dict[str, Any]:
    """Load ``doc`` under ``spec`` and ask all its questions; one job row."""
    from deployments.engine.sampling import SamplingParams
    from kvpool import PressSpec

    start = time.perf_counter()
    ckv = engine.prefill(doc.context, PressSpec.model_validate(spec))
    load_s = time.perf_counter() - start
    answers = []
    for item in doc.items:
        text, _, _ = engine.answer(ckv, item.question, SamplingParams(max_tokens=max_tokens, stop=list(STOP)))
        answers.append({"question": item.question, "expected": item.answer, "answer": text, "depth": item.depth,
                        "correct": exact_match(text, item.answer, item.kind)})
    return {"doc_id": doc.doc_id, "task": doc.task, "set": _set_of(doc.task), "tokens_read": ckv.meta.original_tokens,
            "tokens_kept": round(ckv.meta.kept_tokens, 1), "bytes_stored": ckv.nbytes, "load_s": round(load_s, 3),
            "answers": answers}


def configurations(presses: list[str], ratios: list[float], full_ratio_presses: list[str]) -> list[tuple[str, float]]:
    """``none`` first, then every press at 0.5 (or the first ratio), then the other ratios for
    ``full_ratio_presses`` - so an interrupted run already ranks every press at the default ratio."""
    main = 0.5 if 0.5 in ratios else ratios[0]
    configs = [("none", 0.0)] + [(p, main) for p in presses]
    configs += [(p, r) for p in presses if p in full_ratio_presses for r in ratios if r != main]
    return configs


def sweep(engine, docs: list[QADocument], configs: list[tuple[str, float]], max_tokens: int,
          save: Callable[[list[dict]], None], log: Callable[[str], None], jobs: list[dict] | None = None) -> list[dict]:
    """Run ``configs`` on ``docs``, appending to ``jobs``; ``save(jobs)`` after each configuration."""
    jobs = [] if jobs is None else jobs
    start = time.perf_counter()
    for i, (label, ratio) in enumerate(configs):
        spec = press_spec(label, ratio)
        for doc in docs:
            job = run_document(engine, doc, spec, max_tokens)
            jobs.append({"press": label, "compression_ratio": ratio, "spec": spec, **job})
        done = [j for j in jobs if j["press"] == label and j["compression_ratio"] == ratio]
        correct = sum(a["correct"] for j in done for a in j["answers"])
        log(f"[{i + 1}/{len(configs)}] {label} r={ratio}: {correct}/{sum(len(j['answers']) for j in done)} correct, "
            f"load {mean(j['load_s'] for j in done):.2f} s ({time.perf_counter() - start:.0f} s)")
        save(jobs)
    return jobs


def short_context_sweep(engine, press: str, ratio: float, lengths: list[int], seeds: list[int], max_tokens: int,
                        count, log: Callable[[str], None]) -> list[dict]:
    """Accuracy of ``press`` at ``ratio`` vs uncompressed on short needle documents (2 needles each)."""
    rows = []
    for length in lengths:
        docs = [needle_document(seed, length, count, needles=2) for seed in seeds]
        row: dict[str, Any] = {"context_tokens": length}
        for label, r in (("none", 0.0), (press, ratio)):
            jobs = [run_document(engine, doc, press_spec(label, r), max_tokens) for doc in docs]
            answers = [a for j in jobs for a in j["answers"]]
            row["tokens_read"] = round(mean(j["tokens_read"] for j in jobs))
            row["none" if label == "none" else "press"] = sum(a["correct"] for a in answers) / len(answers)
        row["questions"] = len(docs) * 2
        log(f"short context {length}: none {row['none']:.2f}, {press} {row['press']:.2f}")
        rows.append(row)
    return rows


def _long_load_child(press: str, ratio: float, target_tokens: int, threads: int, queue, dtype: str = "auto") -> None:
    """One long-context load in a fresh process (so its peak memory is its own); puts a row."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    engine = KVEngine(load_model(ModelConfig(dtype=dtype)), EMBEDDED_MODEL_ID)
    count = lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    run_document(engine, needle_document(0, 256, count, needles=2), press_spec("none", 0), 4)  # warm up
    doc = needle_document(0, target_tokens, count)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = run_document(engine, doc, press_spec(press, ratio), 20)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"press": press, "compression_ratio": ratio if press != "none" else 0.0,
               "tokens_read": job["tokens_read"], "load_s": job["load_s"],
               "peak_rss_growth_mib": round(max(0, peak - before) / 1024),
               "correct": sum(a["correct"] for a in job["answers"]), "questions": len(job["answers"])})


def long_context_sweep(presses: list[str], ratio: float, target_tokens: int, threads: int,
                       log: Callable[[str], None], dtype: str = "auto", repeats: int = 1) -> list[dict]:
    """Load time and peak memory growth of each press (and ``none``) on one long needle document,
    each in its own process: what the short benchmark documents hide (a press whose cost grows
    faster than the context, e.g. by materializing attention weights). With ``repeats`` > 1 the
    presses are loaded round by round (every other round in reverse order, so a drift in the
    machine's load falls on all of them) and each row gives the median ``load_s`` of its rounds,
    every round's in ``load_s_runs``, its ratio to ``none`` of the same round in
    ``load_vs_none_runs`` (median ``load_vs_none_median``), and the fastest round ``load_s_min``
    with its ratio to none's fastest, ``load_vs_none_min``."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    order = ["none", *presses]
    runs: dict[str, list[dict]] = {press: [] for press in order}
    for round_ in range(repeats):
        for press in order if round_ % 2 == 0 else order[::-1]:
            queue = ctx.Queue()
            child = ctx.Process(target=_long_load_child, args=(press, ratio, target_tokens, threads, queue, dtype))
            child.start()
            row = _result_of(child, queue)
            child.join()
            if "error" in row:
                log(f"long context, {press}: {row['error']}")
            else:
                log(f"long context {row['tokens_read']} tokens, {press}: load {row['load_s']:.1f} s, "
                    f"peak +{row['peak_rss_growth_mib']} MiB, {row['correct']}/{row['questions']} correct")
            runs[press].append({"press": press, **row})
    return [_long_row(runs[press], runs["none"]) for press in order]


def _long_row(rounds: list[dict], baseline: list[dict]) -> dict:
    """One press's long-context row from its rounds (the first round's row with medians)."""
    from statistics import median

    ok = [r for r in rounds if "error" not in r]
    if len(rounds) == 1 or not ok:
        return rounds[0]
    row = {**ok[0], "load_s": round(median(r["load_s"] for r in ok), 3),
           "load_s_runs": [r["load_s"] for r in ok], "rounds": len(ok)}
    pairs = [(r["load_s"], b["load_s"]) for r, b in zip(rounds, baseline) if "error" not in r and "error" not in b]
    if pairs:
        row["load_vs_none_runs"] = [round(a / b, 3) for a, b in pairs]
        row["load_vs_none_median"] = round(median(a / b for a, b in pairs), 3)
    ok_base = [b["load_s"] for b in baseline if "error" not in b]
    row["load_s_min"] = min(r["load_s"] for r in ok)  # the least disturbed round, on a shared machine
    if ok_base:
        row["load_vs_none_min"] = round(row["load_s_min"] / min(ok_base), 3)
    return row


def _result_of(child, queue) -> dict:
    """The child's row, or an error row if it died without one (e.g. killed for memory)."""
    import queue as queues

    while True:
        try:
            return queue.get(timeout=5)
        except queues.Empty:
            if not child.is_alive():
                try:  # it may have put its row just before exiting
                    return queue.get(timeout=1)
                except queues.Empty:
                    return {"error": f"the load process exited with code {child.exitcode} and no result"}


def plot_long(long: dict[str, Any], path: Path) -> None:
    """The long-context sweep alone: load time per press (median bar, each round a dot) and
    needles found, for a ``--long-only`` run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in long["rows"] if "error" not in r]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = [r["press"] for r in rows]
    ax.bar(names, [r["load_s"] for r in rows], color=["k" if n == "none" else "tab:blue" for n in names], alpha=0.6)
    for i, row in enumerate(rows):
        runs = row.get("load_s_runs", [row["load_s"]])
        ax.scatter([i] * len(runs), runs, color="tab:red", s=12, zorder=3)
        ax.annotate(f"{row['correct']}/{row['questions']}", (i, row["load_s"]), ha="center", xytext=(0, 4),
                    textcoords="offset points", fontsize=8)
    tokens = rows[0]["tokens_read"] if rows else long["target_tokens"]
    ax.set_ylabel("load (prefill + press) s")
    ax.set_title(f"load at {tokens} tokens, r = 0.5: median (bar), each round (dots), needles found")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    at_half = [r for r in rows if r["compression_ratio"] == 0.5 or r["press"] == "none"]
    for row in at_half:
        marker = "o" if row["query_agnostic"] else "x"
        left.scatter(row["load_s"], row["accuracy"], marker=marker, color="k" if row["press"] == "none" else None)
        left.annotate(row["press"], (row["load_s"], row["accuracy"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    left.set_xlabel("load (prefill + press) time per document, s")
    left.set_ylabel("exact-match accuracy, both question sets")
    left.set_title("r = 0.5: accuracy vs load time (o query-agnostic, x query-aware)")
    for press in sorted({r["press"] for r in rows if r["press"] != "none"}):
        line = sorted((r["compression_ratio"], r["accuracy"]) for r in rows if r["press"] == press)
        if len(line) > 1:
            right.plot(*zip(*line), marker="o", label=press)
    none = next((r for r in rows if r["press"] == "none"), None)
    if none is not None:  # a part run (--no-baseline) has no baseline
        right.axhline(none["accuracy"], color="k", linestyle="--", label="uncompressed")
    right.set_xlabel("compression ratio")
    right.set_ylabel("accuracy")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown_table(result: dict[str, Any], presses: list[str] | None = None) -> str:
    """The summary as Markdown: accuracy per question set next to bytes and load time (only
    ``presses`` and ``none`` when given)."""
    lines = ["| press | ratio | accuracy document / chat | vs uncompressed (worst set) | KV bytes vs none "
             "| load s (vs none) |", "|---|---|---|---|---|---|"]
    rows = [r for r in result["summary"] if presses is None or r["press"] in ("none", *presses)]
    rows = sorted(rows, key=lambda r: (r["press"] != "none", r["compression_ratio"], -r["accuracy"]))
    for r in rows:
        by_set = r["accuracy_by_set"]
        worst = min((v for v in (r.get("relative_by_set") or {}).values() if v is not None), default=None)
        lines.append(f"| {r['press']}{'' if r['query_agnostic'] else ' (query-aware)'} | {r['compression_ratio']} "
                     f"| {by_set.get('document', float('nan')):.2f} / {by_set.get('chat', float('nan')):.2f} "
                     f"| {'-' if worst is None else f'{worst:.2f}'} | {r.get('bytes_vs_none', 1.0):.2f} "
                     f"| {r['load_s']:.1f} ({r.get('load_vs_none') or 1.0:.1f}x) |")
    return "\n".join(lines)


def merge(parts: list[Path], out: Path, presses: list[str] | None = None) -> None:
    """One result from part runs on the same documents (e.g. run in parallel): jobs concatenated,
    the short-context sweep taken from the part that has it, summary and ranking recomputed.
    ``presses``: keep only these presses' jobs and long-context rows (and none's)."""
    results = [json.loads(p.read_text()) for p in parts]
    ids = [[d["doc_id"] for d in r["documents"]] for r in results if r.get("jobs")]
    if any(i != ids[0] for i in ids):
        raise SystemExit(f"parts were run on different documents: {ids}")
    merged = {**results[0], "parts": [{"path": str(p), "config": r["config"], "started": r.get("started"),
                                       "finished": r.get("finished")} for p, r in zip(parts, results)]}
    keep = (lambda press: True) if presses is None else (lambda press: press in ("none", *presses))  # noqa: E731
    merged["jobs"] = [job for r in results for job in r.get("jobs", []) if keep(job["press"])]
    merged["configs"] = [c for r in results for c in r.get("configs", []) if r.get("jobs") and keep(c[0])]
    long = [r["long_contexts"] for r in results if r.get("long_contexts")]
    if long:  # every part's rows, one per press (the first part that measured it)
        rows = {}
        for part in long:
            for row in part["rows"]:
                if keep(row["press"]):
                    rows.setdefault(row["press"], row)
        merged["long_contexts"] = {**long[0], "rows": list(rows.values())}
    merged["summary"] = summarize(merged["jobs"])
    merged["ranking_at_0.5"] = rank_presses(merged["summary"], 0.5, long_context_loads(merged))
    short = [r["short_contexts"] for r in results if r.get("short_contexts")]
    best = merged["ranking_at_0.5"][0]["press"] if merged["ranking_at_0.5"] else None
    if short:  # the sweep of the press ranked first, if a part measured it
        merged["short_contexts"] = next((s for s in short if s["press"] == best), short[0])
    out.write_text(json.dumps(merged, indent=1))
    plot(merged, out.with_suffix(".png"))
    print(markdown_table(merged))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presses", nargs="+", default=list(PRESSES))
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    parser.add_argument("--full-ratio-presses", nargs="*", default=list(FULL_RATIO_PRESSES),
                        help="presses swept over every ratio (the others only at 0.5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="documents per task")
    parser.add_argument("--chat-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--context-tokens", type=int, default=512)
    parser.add_argument("--short-lengths", type=int, nargs="*", default=[64, 128, 256],
                        help="target lengths of the short needle documents (the passkey preamble alone is ~35 tokens)")
    parser.add_argument("--short-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="model.dtype (auto: bfloat16 on AMX / AVX-512 BF16 CPUs, docs/dtype.md)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 presses, r=0.5, one document per set")
    parser.add_argument("--out", type=Path, default=RESULTS / "press_quality.json")
    parser.add_argument("--table", action="store_true", help="print the result in --out as a Markdown table, run nothing")
    parser.add_argument("--table-presses", nargs="+", default=None, metavar="PRESS",
                        help="with --table or --merge: only these presses (and none)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the uncompressed configuration (for a part "
                        "run whose result is merged with one that has it)")
    parser.add_argument("--short-only", action="store_true", help="only the short-context sweep, of --short-press")
    parser.add_argument("--short-press", default="kvzip")
    parser.add_argument("--long-tokens", type=int, default=4000,
                        help="length of the long-context load sweep (0: skip it)")
    parser.add_argument("--long-presses", type=int, default=3,
                        help="the long-context sweep loads the best N query-agnostic presses (and none)")
    parser.add_argument("--long-repeats", type=int, default=1,
                        help="rounds of the long-context sweep (median load time; alternate rounds reversed)")
    parser.add_argument("--long-only", nargs="+", default=None, metavar="PRESS",
                        help="only the long-context sweep, of these presses (a part run for --merge)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="combine these part results (jobs + short-context sweep) into --out, run nothing")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.out.read_text()), args.table_presses))
        return
    if args.merge:
        merge(args.merge, args.out, args.table_presses)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.long_only:
        rows = long_context_sweep(args.long_only, 0.5, args.long_tokens, args.threads, print, args.dtype,
                                  args.long_repeats)
        config = {k: str(v) for k, v in vars(args).items()}
        long = {"target_tokens": args.long_tokens, "rows": rows}
        args.out.write_text(json.dumps({"benchmark": "press_quality", "config": config, "documents": [],
                                        "long_contexts": long}, indent=1))
        plot_long(long, args.out.with_suffix(".png"))
        return
    if args.quick:
        args.presses, args.ratios, args.full_ratio_presses = ["knorm", "kvzip"], [0.5], []
        args.seeds, args.chat_seeds, args.short_lengths, args.short_seeds = [0], [0], [48], [0]
        args.long_tokens, args.long_presses = 600, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    engine = KVEngine(load_model(ModelConfig(dtype=args.dtype)), EMBEDDED_MODEL_ID)
    print(f"model dtype: {engine.dtype} (--dtype {args.dtype})")
    count = lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    if args.short_only:
        rows = short_context_sweep(engine, args.short_press, 0.5, args.short_lengths, args.short_seeds,
                                   args.max_tokens, count, print)
        short = {"press": args.short_press, "compression_ratio": 0.5, "rows": rows, "min_tokens": choose_min_tokens(rows)}
        args.out.write_text(json.dumps({"benchmark": "press_quality", "config": {k: str(v) for k, v in vars(args).items()},
                                        "documents": [], "short_contexts": short}, indent=1))
        print(json.dumps(short, indent=1))
        return
    docs = build_documents(["needle", "facts"], args.seeds, args.context_tokens, count)
    docs += build_documents(["chat"], args.chat_seeds, args.context_tokens, count)
    run_document(engine, docs[0], press_spec("none", 0), 4)  # warm up: first forward passes are slower
    configs = configurations(args.presses, args.ratios, args.full_ratio_presses)
    if args.no_baseline:
        configs = [c for c in configs if c[0] != "none"]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"benchmark": "press_quality", "config": config, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "documents": [d.to_json() for d in docs], "configs": [list(c) for c in configs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(jobs: list[dict]) -> None:
        result["jobs"] = jobs
        result["summary"] = summarize(jobs)
        result["ranking_at_0.5"] = rank_presses(result["summary"], 0.5, long_context_loads(result))
        args.out.write_text(json.dumps(result, indent=1))

    # query-agnostic presses at the main ratio first: they decide the default, whose short-context
    # threshold is measured next; query-aware presses and the other ratios come last
    main_ratio = 0.5 if 0.5 in args.ratios else args.ratios[0]
    first = [c for c in configs if c[0] == "none" or (c[1] == main_ratio and _agnostic_label(c[0]))]
    jobs = sweep(engine, docs, first, args.max_tokens, save, print)
    best = result["ranking_at_0.5"][0]["press"] if result.get("ranking_at_0.5") else args.short_press
    if args.short_lengths:
        result["short_contexts"] = {"press": best, "compression_ratio": 0.5, "rows": short_context_sweep(
            engine, best, 0.5, args.short_lengths, args.short_seeds, args.max_tokens, count, print)}
        result["short_contexts"]["min_tokens"] = choose_min_tokens(result["short_contexts"]["rows"])
        save(jobs)
    sweep(engine, docs, [c for c in configs if c not in first], args.max_tokens, save, print, jobs)
    if args.long_tokens and result.get("ranking_at_0.5"):
        top = [r["press"] for r in result["ranking_at_0.5"][: args.long_presses]]
        result["long_contexts"] = {"target_tokens": args.long_tokens,
                                   "rows": long_context_sweep(top, 0.5, args.long_tokens, args.threads, print, args.dtype)}
        save(result["jobs"])
        best = result["ranking_at_0.5"][0]["press"]
        if args.short_lengths and result["short_contexts"]["press"] != best:  # the long loads broke a tie
            rows = short_context_sweep(engine, best, 0.5, args.short_lengths, args.short_seeds, args.max_tokens,
                                       count, print)
            result["short_contexts"] = {"press": best, "compression_ratio": 0.5, "rows": rows,
                                        "min_tokens": choose_min_tokens(rows)}
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(result["jobs"])
    plot(result, args.out.with_suffix(".png"))
    print(json.dumps({"ranking_at_0.5": result["ranking_at_0.5"][:5], "short_contexts": result.get("short_contexts")},
                     indent=1))


if __name__ == "__main__":
    main()
