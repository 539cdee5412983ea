"""Press quality on the RULER-style suite and the question sets, relative to uncompressed, with
95% paired-bootstrap intervals; load time and peak memory per press at each length; the default.

    python benchmarks/ruler_quality.py --quick          # smoke run, ~1-2 min (2 presses, 1k tokens)
    python benchmarks/ruler_quality.py                  # the full run (resumes --out if present)
    python benchmarks/ruler_quality.py --table          # print the committed result, run nothing
    python benchmarks/ruler_quality.py --merge a.json b.json   # combine part runs into --out

Every document (benchmarks/ruler: niah single / multikey / multivalue, variable tracking, common
words at 1k / 2k / 4k tokens; plus the ``document`` and ``chat`` question sets at 512) is
prefilled ONCE per (press, ratio) with ``KVEngine.prefill`` (load time = that wall time; peak
memory = growth of the process's peak RSS during it, reset before each load), and every probe
is answered greedily from that one stored cache by the engine's batched decode loop
(``DecodeLoop``: each answer decodes from its own copy; the stored cache is never mutated).
Uncompressed (``none``) runs first; a press is scored by its accuracy over uncompressed on the
same probes (``ruler_stats``), and runs on every document of each (task, length) cell where
uncompressed answers at least one probe (a cell it never answers, such as variable tracking on
this model, cannot show a loss and is not run under the presses).

Compute is scarce, so the run is resumable and mergeable: jobs are keyed by (press, ratio,
document); a run skips keys already in ``--out`` and saves after every document; a run with more
seeds / lengths / presses appends to the same file. ``--max-minutes`` stops starting new loads.
Configurations run in priority order: ``none``, every query-agnostic press at 0.5, then the
other ratios, then the query-aware presses. Then the default is chosen on the even seeds
(benchmarks/default_choice.py) and its ``min_tokens`` measured on short needle documents
(press_quality.short_context_sweep). Writes ``benchmarks/results/ruler_quality.json`` + ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.press_grid import press_spec  # noqa: E402
from benchmarks.provenance import provenance  # noqa: E402
from benchmarks.ruler import LENGTHS, TASKS, SuiteDocument, build_suite, question_sets, score_probe, split_of  # noqa: E402
from benchmarks.ruler_result import finish, load_result, merge, query_agnostic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RATIOS = (0.5, 0.25, 0.75)
# the catalog's stand-alone prefill presses that need no artifact; the earlier benchmark's best first
AGNOSTIC = ("kvgrad", "kvzip", "kvcompose", "compactor", "keydiff", "expected_attention", "cap", "non_causal_attn",
            "leverage", "lagkv", "cur", "streaming_llm", "knorm", "random")
AWARE = ("snapkv", "tova", "pyramidkv", "finch")
STOP = (".", "\n")
ANSWER_SLACK_TOKENS = 24  # room for "The special magic number for quiet-harbor is:" before the value


def peak_rss_reset() -> int:
    """Reset the process's peak RSS (Linux ``clear_refs`` 5); return the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def _status_kib(field: str) -> int:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1])


def answer_all(engine, loop, ckv, probes: tuple, count: Callable[[str], int]) -> list[str]:
    """Answer every probe from ``ckv`` in one batch of the engine's decode loop; texts in order.
    Raises the first row's error (a press whose cache cannot be decoded)."""
    from deployments.engine.sampling import SamplingParams

    texts: list[list[str]] = [[] for _ in probes]
    errors: list[BaseException] = []
    left = threading.Semaphore(0)

    def deliver_to(i: int):
        def deliver(item) -> None:
            if isinstance(item, BaseException):
                errors.append(item)
                left.release()
                return
            texts[i].append(item.text)
            if item.finish_reason is not None:
                left.release()
        return deliver

    for i, probe in enumerate(probes):
        params = SamplingParams(max_tokens=count(", ".join(probe.answers)) + ANSWER_SLACK_TOKENS, stop=list(STOP))
        ids = engine.question_ids(ckv, probe.question)
        engine.check_request(ckv, ids, params)
        loop.submit(ckv, ids, params, deliver_to(i))
    for _ in probes:
        if not left.acquire(timeout=600):
            raise TimeoutError("decode loop gave no answer within 600 s")
    if errors:
        raise errors[0]
    return ["".join(t) for t in texts]


def run_job(engine, loop, doc: SuiteDocument, label: str, ratio: float, count) -> dict[str, Any]:
    """Load ``doc`` once under (label, ratio) and answer all its probes: one job row."""
    from kvpool import PressSpec

    spec = press_spec(label, ratio)
    before = peak_rss_reset()
    start = time.perf_counter()
    ckv = engine.prefill(doc.context, PressSpec.model_validate(spec))
    load_s = time.perf_counter() - start
    growth = max(0, _status_kib("VmHWM") - before) / 1024
    texts = answer_all(engine, loop, ckv, doc.probes, count)
    return {"press": label, "compression_ratio": ratio if label != "none" else 0.0, "spec": spec,
            "doc_id": doc.doc_id, "tokens_read": ckv.meta.original_tokens, "tokens_kept": round(ckv.meta.kept_tokens, 1),
            "bytes_stored": ckv.nbytes, "load_s": round(load_s, 3), "peak_growth_mib": round(growth, 1),
            "answers": [{"probe": i, "answer": t, "correct": score_probe(t, p, doc.family)}
                        for i, (t, p) in enumerate(zip(texts, doc.probes))]}


def cost_sweep(engine, presses: list[str], ratio: float, lengths: list[int], count, log) -> list[dict[str, Any]]:
    """Load time and peak memory growth per press at each length, each load right after an
    uncompressed load of the same document (a ``niah_single`` document, seed 0), so the ratio to
    uncompressed is read within the same minute of a shared machine."""
    from kvpool import PressSpec

    rows = []
    for length in lengths:
        doc = build_suite(["niah_single"], [0], [length], count)[0]
        for label in presses:
            measured = {}
            for name in ("none", label):
                spec = PressSpec.model_validate(press_spec(name, ratio))
                before = peak_rss_reset()
                start = time.perf_counter()
                ckv = engine.prefill(doc.context, spec)
                measured[name] = (time.perf_counter() - start, max(0, _status_kib("VmHWM") - before) / 1024)
                del ckv
            (none_s, _), (load_s, growth) = measured["none"], measured[label]
            rows.append({"press": label, "compression_ratio": ratio, "target_tokens": length,
                         "tokens_read": count(doc.context), "load_s": round(load_s, 3), "none_load_s": round(none_s, 3),
                         "load_vs_none": round(load_s / none_s, 2), "peak_growth_mib": round(growth, 1)})
            log(f"load {label} at {length}: {load_s:.1f} s ({load_s / none_s:.1f}x none), +{growth:.0f} MiB")
    return rows


def configurations(presses: list[str], ratios: list[float], agnostic: Callable[[str], bool]) -> list[tuple[str, float]]:
    """``none``, then query-agnostic presses ratio by ratio (in ``ratios`` order), then the rest."""
    first = [(p, r) for r in ratios for p in presses if agnostic(p)]
    return [("none", 0.0), *first, *[(p, r) for r in ratios for p in presses if not agnostic(p)]]


def _documents(args, count) -> list[SuiteDocument]:
    docs = build_suite(args.tasks, args.seeds, args.lengths, count)
    return docs + (question_sets(args.qs_seeds, args.qs_tokens, count) if args.qs_seeds else [])


def short_sweep(engine, choice: dict, args, count, log) -> dict[str, Any]:
    """min_tokens of the chosen press: press_quality's short-context sweep on even seeds (choose),
    repeated on odd seeds (report)."""
    from benchmarks.press_quality import short_context_sweep
    from benchmarks.press_ranking import choose_min_tokens

    press, ratio = choice["press"], choice["compression_ratio"]
    rows = {split: short_context_sweep(engine, press, ratio, args.short_lengths,
                                       [s for s in args.short_seeds if split_of(s) == split], 20, count, log)
            for split in ("choose", "report")}
    return {"press": press, "compression_ratio": ratio, "rows": rows["choose"], "report_rows": rows["report"],
            "min_tokens": choose_min_tokens(rows["choose"])}


def sweep(args, result: dict[str, Any], docs: list[SuiteDocument], engine, loop, count, log) -> None:
    from benchmarks import ruler_stats

    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    done = {(j["press"], j["compression_ratio"], j["doc_id"]) for j in result["jobs"]}
    last_save = time.monotonic()
    for label, ratio in configurations(args.presses, args.ratios, query_agnostic):
        cells = ruler_stats.scored_cells(result["jobs"], result["documents"])
        todo = [d for d in docs if (label, ratio, d.doc_id) not in done
                and (label == "none" or (d.task, d.target_tokens) in cells)]
        started = time.perf_counter()
        for doc in todo:
            if deadline and time.monotonic() > deadline:
                log(f"--max-minutes reached; stopping before {label} r={ratio} {doc.doc_id}")
                return
            try:
                job = run_job(engine, loop, doc, label, ratio, count)
            except Exception as exc:  # noqa: BLE001 - one press failing is a result row, not the end of the run
                job = {"press": label, "compression_ratio": ratio, "doc_id": doc.doc_id, "error": repr(exc)[:500]}
                log(f"{label} r={ratio} {doc.doc_id}: {job['error']}")
            result["jobs"].append(job)
            done.add((label, ratio, doc.doc_id))
            if time.monotonic() - last_save > 30:
                finish(result, args.out)
                last_save = time.monotonic()
        if todo:
            rows = [j for j in result["jobs"] if j["press"] == label and j["compression_ratio"] == ratio and "answers" in j]
            right = sum(a["correct"] for j in rows for a in j["answers"])
            log(f"{label} r={ratio}: {len(todo)} documents in {time.perf_counter() - started:.0f} s, "
                f"{right}/{sum(len(j['answers']) for j in rows)} probes right")
            finish(result, args.out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presses", nargs="*", default=[*AGNOSTIC, *AWARE], help="none is always run first")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="even: choose, odd: report")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--qs-seeds", type=int, nargs="*", default=[0, 1, 2, 3],
                        help="seeds of the document and chat question sets (none: RULER only)")
    parser.add_argument("--qs-tokens", type=int, default=512)
    parser.add_argument("--short-lengths", type=int, nargs="*", default=[64, 128, 256])
    parser.add_argument("--short-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--dtype", default=None, help="model dtype (default: ModelConfig's, the product default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--max-minutes", type=float, default=None, help="start no new load after this long")
    parser.add_argument("--costs", type=int, nargs="*", default=None, metavar="TOKENS",
                        help="only measure load time and peak memory of --presses at --ratios[0] at these lengths "
                             "(paired with uncompressed loads), appended to --out's cost_runs")
    parser.add_argument("--quick", action="store_true", help="smoke run: knorm + streaming_llm at 0.5 on 2 niah_multikey "
                        "documents of 1k tokens and the question sets at 256 (about a minute on an idle core)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ruler_quality.json")
    parser.add_argument("--table", action="store_true", help="print --out as Markdown tables, run nothing")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="combine part results into --out")
    args = parser.parse_args(argv)
    from benchmarks import ruler_report

    if args.table:
        print(ruler_report.markdown(json.loads(args.out.read_text())))
        return
    if args.merge:
        merge(args.merge, args.out)
        ruler_report.plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return
    if args.quick:
        args.presses, args.ratios, args.tasks = ["knorm", "streaming_llm"], [0.5], ["niah_multikey"]
        args.seeds, args.lengths, args.qs_seeds, args.short_lengths, args.short_seeds = [0, 1], [1024], [0, 1], [64], [0, 1]
        args.qs_tokens = 256
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from deployments.engine.decode import DecodeLoop
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model

    model_config = ModelConfig(**({"dtype": args.dtype} if args.dtype else {}))
    engine = KVEngine(load_model(model_config), EMBEDDED_MODEL_ID)
    count = lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    docs = _documents(args, count)
    result = load_result(args.out, docs)
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result["config"]["dtype"] = str(next(engine.model.parameters()).dtype).removeprefix("torch.")
    result.setdefault("runs", []).append(provenance(result["config"]))  # one entry per (resumed) run
    if args.costs is not None:
        run_job_free = build_suite(["niah_single"], [0], [256], count)[0]
        engine.prefill(run_job_free.context)  # warm up
        rows = cost_sweep(engine, args.presses, args.ratios[0], args.costs or [1024, 4096], count, print)
        result.setdefault("cost_runs", []).extend(rows)
        finish(result, args.out)
        return
    loop = DecodeLoop(engine)
    try:
        run_job(engine, loop, build_suite(["niah_single"], [0], [256], count)[0], "none", 0.0, count)  # warm up
        sweep(args, result, docs, engine, loop, count, print)
        finish(result, args.out)
        choice = result.get("default")
        short = result.get("short_contexts") or {}
        if choice and args.short_lengths and (short.get("press"), short.get("compression_ratio")) != (
                choice["press"], choice["compression_ratio"]):
            result["short_contexts"] = short_sweep(engine, choice, args, count, print)
            finish(result, args.out)
    finally:
        loop.close()
    ruler_report.plot(result, args.out.with_suffix(".png"))
    print(ruler_report.markdown(result))


def _reexec_with_fixed_mmap_threshold() -> None:
    """Peak memory per load is read from the process's peak RSS; glibc's adaptive mmap threshold
    would keep freed tensors in the heap (RSS stays high, growth reads low), so fix it once."""
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
        os.execv(sys.executable, [sys.executable, *sys.argv])


if __name__ == "__main__":
    _reexec_with_fixed_mmap_threshold()
    main()
