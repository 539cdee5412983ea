"""The ``kvfleet`` command line.

    kvfleet prepare-model [--cache-dir DIR]   convert the embedded model once (progress bar)
    kvfleet demo [--press NAME --ratio R]     load a document, compress it, ask questions (no Ray)
    kvfleet serve [CONFIG]                    same as `serve run configs/cluster.yaml`
    kvfleet stats ...                         KV pool statistics table + heatmap
    kvfleet bench ...                         serving benchmark / report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _prepare_model(args: argparse.Namespace) -> int:
    from deployments.engine.model_loader import ModelConfig, load_model, prepare_embedded_model

    start = time.perf_counter()
    path, converted = prepare_embedded_model(args.cache_dir, progress=True)
    first_s = time.perf_counter() - start
    loaded = load_model(ModelConfig(cache_dir=args.cache_dir))
    print(json.dumps({"path": str(path), "converted_now": converted, "prepare_s": round(first_s, 2),
                      "cached_load_s": round(loaded.load_s, 2)}))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import ModelConfig, load_model
    from deployments.engine.sampling import SamplingParams
    from kvpool import PressSpec

    config = ModelConfig()
    loaded = load_model(config, progress=True)
    engine = KVEngine(loaded, config.name)
    facts = "The secret code of the vault is 7341. Alice was born in Lisbon. The meeting is on Thursday at noon. "
    filler = "The committee discussed the annual budget, the new library wing and several unrelated matters. " * 30
    context = filler[: len(filler) // 2] + facts + filler[len(filler) // 2:]
    spec = PressSpec(name=args.press, compression_ratio=args.ratio if args.press != "none" else 0.0)
    start = time.perf_counter()
    ckv = engine.prefill(context, spec)
    print(f"context: {ckv.meta.original_tokens} tokens read, {ckv.meta.kept_tokens:.0f} kept per head "
          f"({spec.name}, ratio {spec.compression_ratio}), {ckv.nbytes / 2**20:.1f} MiB, "
          f"prefill {time.perf_counter() - start:.2f} s")
    for question in ["What is the secret code of the vault?", "When is the meeting?"]:
        start = time.perf_counter()
        answer = engine.answer(ckv, question, SamplingParams(max_tokens=32))[0]
        print(f"Q: {question}\nA: {answer}  ({time.perf_counter() - start:.2f} s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    return subprocess.call(["serve", "run", args.config])


def _stats(args: argparse.Namespace, rest: list[str]) -> int:
    from kvpool.stats_cli import main as stats_main

    return stats_main(rest)


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    """Benchmarks live in the source checkout (benchmarks/), not in the installed packages."""
    root = Path(__file__).resolve().parents[1]
    if (root / "benchmarks").is_dir() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from benchmarks.serving_report import main as bench_main  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"kvfleet bench needs a source checkout with benchmarks/ ({exc})", file=sys.stderr)
        return 2
    return bench_main(rest)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="kvfleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the embedded model to a cached safetensors copy")
    prep.add_argument("--cache-dir", default=None)
    demo = sub.add_parser("demo", help="engine demo without Ray")
    demo.add_argument("--press", default="knorm")
    demo.add_argument("--ratio", type=float, default=0.5)
    serve = sub.add_parser("serve", help="run a Serve config (default configs/cluster.yaml)")
    serve.add_argument("config", nargs="?", default="configs/cluster.yaml")
    sub.add_parser("stats", help="KV pool statistics (see `kvfleet stats --help`)", add_help=False)
    sub.add_parser("bench", help="serving benchmark (see `kvfleet bench --help`)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "stats":
        return _stats(args, rest)
    if args.command == "bench":
        return _bench(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return {"prepare-model": _prepare_model, "demo": _demo, "serve": _serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
