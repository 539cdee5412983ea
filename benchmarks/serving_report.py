"""``kvfleet bench``: the serving benchmark and quality evaluation (issue 9).

    kvfleet bench run --quick              # CI smoke, a few minutes: every section, tiny settings
    kvfleet bench run                      # full mode (see docs/benchmarks.md for its runtime)
    kvfleet bench run --url http://host:8000 --sections quality latency
    kvfleet bench run --sections quality latency migration \
        --engine-from benchmarks/results/engine_ttft.json   # reuse a measured engine section
    kvfleet bench report [RESULT.json]     # Markdown tables (printed and written next to the JSON)

``run`` starts a local Ray cluster and the real kvfleet app (tests/serving.py helpers, 2 replicas,
HTTP port ``--port`` in 8200-8299) unless ``--url`` points at a running one, then runs the
sections in order: ``engine`` (benchmarks/engine_ttft.py, in this process, before the app
starts), ``quality`` (+ ``capacity`` from the same sessions), ``latency``, ``migration``.
Writes ``benchmarks/results/serving_bench[_quick].json``, one PNG per plot and the Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.press_grid import QUALITY_PRESSES, RATIOS  # noqa: E402
from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402

SECTIONS = ("engine", "quality", "latency", "migration")
GiB = 1 << 30

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "engine": {"lengths": [512], "repeats": 1, "presses": ["knorm"], "ratios": [0.0, 0.5], "bytes_tokens": 512,
                   "load_repeats": 0},
        "quality": {"context_tokens": 768, "tasks": ["needle"], "seeds": [0], "presses": ["knorm", "streaming_llm"],
                    "ratios": [0.5], "int8": True, "int8_ratios": None},
        "latency": {"lengths": [512], "concurrency": [1, 2], "rounds": 1},
        "migration": {"lengths": [512], "rounds": 1},
        "capacity_budget_bytes": 1 * GiB,
    },
    "full": {
        "engine": {"lengths": [1024, 2048, 4096], "repeats": 3, "presses": ["knorm", "snapkv", "streaming_llm",
                                                                           "expected_attention", "adakv(snapkv)",
                                                                           "kvzip"],
                   "ratios": list(RATIOS), "bytes_tokens": 1024, "load_repeats": 1},
        "quality": {"context_tokens": 1024, "tasks": ["needle", "facts", "chat"], "seeds": [0, 1, 2],
                    "presses": list(QUALITY_PRESSES), "ratios": [r for r in RATIOS if r > 0], "int8": True,
                    "int8_ratios": [0.5]},
        "latency": {"lengths": [1024, 4096], "concurrency": [1, 4, 16], "rounds": 2},
        "migration": {"lengths": [1024, 4096], "rounds": 2},
        # the fill holds this much real cache in the benchmark process (capacity.py): 1 GiB keeps
        # the peak well inside a 24 GiB machine that also runs the app
        "capacity_budget_bytes": 1 * GiB,
    },
}
SESSION_PRESS = {"name": "knorm", "compression_ratio": 0.5}


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """The preset of the mode with the command-line overrides applied."""
    config = json.loads(json.dumps(PRESETS["quick" if args.quick else "full"]))
    quality = config["quality"]
    for key in ("context_tokens", "tasks", "seeds", "presses", "ratios"):
        if getattr(args, key) is not None:
            quality[key] = getattr(args, key)
    if args.no_int8:
        quality["int8"] = False
    if args.int8_ratios is not None:
        quality["int8_ratios"] = args.int8_ratios or None
    if args.rounds is not None:
        config["latency"]["rounds"] = config["migration"]["rounds"] = args.rounds
    config["mode"] = "quick" if args.quick else "full"
    config["sections"] = args.sections
    config["session_press"] = SESSION_PRESS
    config["url"] = args.url
    return config


def _token_counter():
    from transformers import AutoTokenizer

    from deployments.engine.model_loader import prepare_embedded_model

    path, _ = prepare_embedded_model(progress=False)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _engine_section(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """engine_ttft.run with the mode's settings; also written as its own JSON + PNG at ``out``."""
    from benchmarks import engine_ttft

    e = config["engine"]
    result = engine_ttft.run(e["lengths"], e["repeats"], e["presses"], e["ratios"], e["bytes_tokens"],
                             e["load_repeats"], threads=1, press=SESSION_PRESS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    engine_ttft.plot(result, out.with_suffix(".png"))
    return result


def _engine_from(path: Path) -> dict[str, Any]:
    """A result of ``benchmarks/engine_ttft.py`` (or an earlier run's engine section), marked as reused.

    Raises SystemExit with a message when the file is missing or is not an engine_ttft result.
    """
    if not path.is_file():
        raise SystemExit(f"--engine-from {path}: no such file (run `python benchmarks/engine_ttft.py` first)")
    engine = json.loads(path.read_text())
    if engine.get("benchmark") != "engine_ttft" or "ttft" not in engine:
        raise SystemExit(f"--engine-from {path}: not an engine_ttft result (no 'benchmark': 'engine_ttft' / 'ttft')")
    engine["reused_from"] = str(path)
    return engine


def _resumed(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The finished sections of an interrupted run's ``.partial.json`` (quality + capacity, latency).

    Raises SystemExit when the file is missing or was measured with another quality/latency config.
    """
    if not path.is_file():
        raise SystemExit(f"--resume {path}: no such file")
    partial = json.loads(path.read_text())
    for key in ("quality", "latency"):
        if key in partial and partial["config"].get(key) != config.get(key):
            raise SystemExit(f"--resume {path}: its {key} settings differ from this run's; start afresh")
    kept = {key: partial[key] for key in ("quality", "capacity", "latency") if key in partial}
    kept["resumed_from"] = {"path": str(path), "sections": sorted(kept), "git": partial.get("git")}
    return kept


def _checkpoint(result: dict[str, Any], out: Path) -> None:
    """Write what is measured so far to ``<out>.partial.json`` (a late failure keeps earlier sections)."""
    partial = out.with_name(f"{out.stem}.partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps(result, indent=2))


def _serving_sections(config: dict[str, Any], result: dict[str, Any], url: str | None, port: int,
                      out: Path) -> None:
    from benchmarks.quality_sets import build_documents
    from benchmarks.serving import capacity, latency, migration, quality
    from benchmarks.serving.app import bench_args, running_kvfleet

    count = _token_counter()
    sections = config["sections"]
    args = bench_args()
    result["app_args"] = {k: v for k, v in args.items() if k != "control"} if url is None else {"url": url}
    with running_kvfleet(url=url, port=port, args=args) as target:
        _log(f"kvfleet at {target.base_url} (started here: {target.owns_cluster})")
        if "quality" in sections and "quality" not in result:
            q = config["quality"]
            docs = build_documents(q["tasks"], q["seeds"], q["context_tokens"], count)
            result["quality"] = quality.evaluate(target, docs, q["presses"], q["ratios"], int8=q["int8"],
                                                 capacity_budget_bytes=config["capacity_budget_bytes"],
                                                 int8_ratios=q["int8_ratios"], log=_log)
            result["capacity"] = {"budget_bytes": config["capacity_budget_bytes"],
                                  "rows": capacity.summarize(result["quality"]["jobs"],
                                                             config["capacity_budget_bytes"])}
            _checkpoint(result, out)
        if "latency" in sections and "latency" not in result:
            lat = config["latency"]
            result["latency"] = latency.run(target, lat["lengths"], lat["concurrency"], lat["rounds"], SESSION_PRESS,
                                            count, replicas=args["replicas"]["count"], log=_log)
            _checkpoint(result, out)
        if "migration" in sections:
            mig = config["migration"]
            result["migration"] = migration.run(target, mig["lengths"], mig["rounds"], SESSION_PRESS, count, log=_log)


def run(args: argparse.Namespace) -> int:
    from benchmarks.serving import plots, report, schema

    config = _config(args)
    out = args.out or RESULTS_DIR / ("serving_bench_quick.json" if args.quick else "serving_bench.json")
    result: dict[str, Any] = {"benchmark": "serving", **provenance(config)}
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if args.resume is not None:
        result.update(_resumed(args.resume, config))
    if args.engine_from is not None:
        result["engine"] = _engine_from(args.engine_from)
    elif "engine" in config["sections"]:
        section_start = time.perf_counter()
        engine_out = (out.with_name(f"{out.stem}_engine_ttft.json") if args.out else
                      RESULTS_DIR / ("engine_ttft_quick.json" if args.quick else "engine_ttft.json"))
        result["engine"] = _engine_section(config, engine_out)
        timings["engine"] = round(time.perf_counter() - section_start, 1)
    if set(config["sections"]) - {"engine"}:
        section_start = time.perf_counter()
        _serving_sections(config, result, args.url, args.port, out)
        timings["serving"] = round(time.perf_counter() - section_start, 1)
    for key in ("quality", "latency", "migration"):
        if result.get(key):
            timings[key] = result[key].get("seconds")
    result["section_seconds"] = timings
    finish(result, started)
    schema.validate(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    written = plots.write_all(result, out)
    markdown = report.render(result)
    out.with_suffix(".md").write_text(markdown)
    _log(f"wrote {out}, {out.with_suffix('.md')} and {', '.join(p.name for p in written)} "
         f"in {result['runtime_s']} s")
    print(markdown)
    return 0


def report_cmd(args: argparse.Namespace) -> int:
    from benchmarks.serving import report

    path = Path(args.result)
    if not path.is_file():
        print(f"no result at {path}: run `kvfleet bench run` first (or pass the JSON path)", file=sys.stderr)
        return 2
    markdown = report.render(json.loads(path.read_text()))
    if args.write:
        path.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 0


def _port(value: str) -> int:
    port = int(value)
    if not 8200 <= port <= 8299:
        raise argparse.ArgumentTypeError(f"port {port} is outside 8200-8299 (this project's benchmark range)")
    return port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvfleet bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the benchmark")
    r.add_argument("--quick", action="store_true", help="CI smoke settings (a few minutes)")
    r.add_argument("--url", default=None, help="benchmark a running kvfleet instead of starting one")
    r.add_argument("--port", type=_port, default=8230, help="HTTP port of the app started here (8200-8299)")
    r.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    r.add_argument("--engine-from", dest="engine_from", type=Path, default=None,
                   help="reuse this engine_ttft JSON as the engine section instead of measuring it")
    r.add_argument("--resume", type=Path, default=None,
                   help="keep the finished sections of an interrupted run's .partial.json")
    r.add_argument("--out", type=Path, default=None,
                   help="result JSON (default benchmarks/results/serving_bench*.json)")
    r.add_argument("--context-tokens", dest="context_tokens", type=int, default=None,
                   help="quality documents' length (1k-6k)")
    r.add_argument("--tasks", nargs="+", default=None, choices=["needle", "facts", "chat"])
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="one document per task and seed")
    r.add_argument("--presses", nargs="+", default=None, help="press labels, e.g. knorm 'adakv(snapkv)'")
    r.add_argument("--ratios", type=float, nargs="+", default=None)
    r.add_argument("--no-int8", dest="no_int8", action="store_true", help="skip the int8 codec pass")
    r.add_argument("--int8-ratios", dest="int8_ratios", type=float, nargs="*", default=None,
                   help="ratios that get the int8 pass (none given: all); the baseline always does")
    r.add_argument("--rounds", type=int, default=None, help="latency/migration rounds")
    sub.add_parser("presses", add_help=False,
                   help="press quality in-process: accuracy, bytes, load time per press x ratio on two question "
                        "sets (python benchmarks/press_quality.py --help)")
    rep = sub.add_parser("report", help="render a result as Markdown")
    rep.add_argument("result", nargs="?", default=str(RESULTS_DIR / "serving_bench.json"))
    rep.add_argument("--write", action="store_true", help="also write the .md next to the JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["presses"]:  # the in-process press quality benchmark (no Ray): its own arguments
        from benchmarks.press_quality import main as presses_main

        presses_main(argv[1:])
        return 0
    args = parser().parse_args(argv)
    return run(args) if args.command == "run" else report_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
