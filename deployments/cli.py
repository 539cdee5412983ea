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

DEFAULT_CONFIG = "configs/cluster.yaml"


def _prepare_model(args: argparse.Namespace) -> int:
    from deployments.engine.model_loader import ModelConfig, load_model, prepare_embedded_model

    start = time.perf_counter()
    path, converted = prepare_embedded_model(args.cache_dir, progress=True)
    first_s = time.perf_counter() - start
    loaded = load_model(ModelConfig(cache_dir=args.cache_dir))
    print(json.dumps({"path": str(path), "converted_now": converted, "prepare_s": round(first_s, 2),
                      "cached_load_s": round(loaded.load_s, 2)}))
    return 0


def demo_press(args: argparse.Namespace):
    """The demo's PressSpec: ``--press`` / ``--ratio``, else AppConfig's default press (the
    benchmark's choice, tests/unit/benchmarks/test_default_press.py)."""
    from deployments.config import AppConfig
    from kvpool import PressSpec

    default = AppConfig().default_press
    if args.press is None:
        return default if args.ratio is None else default.model_copy(update={"compression_ratio": args.ratio})
    ratio = default.compression_ratio if args.ratio is None else args.ratio
    return PressSpec(name=args.press, compression_ratio=ratio if args.press != "none" else 0.0)


def _demo(args: argparse.Namespace) -> int:
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import ModelConfig, load_model
    from deployments.engine.sampling import SamplingParams

    config = ModelConfig()
    loaded = load_model(config, progress=True)
    engine = KVEngine(loaded, config.name)
    facts = "The secret code of the vault is 7341. Alice was born in Lisbon. The meeting is on Thursday at noon. "
    filler = "The committee discussed the annual budget, the new library wing and several unrelated matters. " * 30
    context = filler[: len(filler) // 2] + facts + filler[len(filler) // 2:]
    spec = demo_press(args)
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


def find_checkout(start: Path | None = None) -> Path | None:
    """The kvfleet source checkout to use: ``$KVFLEET_CHECKOUT``, else the first directory from
    ``start`` (default: the working directory) upwards, else the one this package was installed from
    in editable mode, that holds ``benchmarks/serving_report.py`` and ``configs/``. None for an
    installed package with no checkout around it (benchmarks and configs are not in the wheel)."""
    def is_checkout(path: Path) -> bool:
        return (path / "benchmarks" / "serving_report.py").is_file() and (path / "configs").is_dir()

    if os.environ.get("KVFLEET_CHECKOUT"):
        path = Path(os.environ["KVFLEET_CHECKOUT"]).expanduser().resolve()
        return path if is_checkout(path) else None
    here = (start or Path.cwd()).resolve()
    for path in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if is_checkout(path):
            return path
    return None


_NO_CHECKOUT = ("kvfleet {what} needs a kvfleet source checkout ({needs} are not part of the installed "
                "package): run it inside a clone of the repository, or set KVFLEET_CHECKOUT=/path/to/clone")


def _serve(args: argparse.Namespace) -> int:
    """``serve run CONFIG``; a relative CONFIG not found here is looked up in the checkout, and
    without any config the application starts with AppConfig's defaults."""
    config = Path(args.config)
    if not config.is_file() and not config.is_absolute() and (checkout := find_checkout()) is not None:
        config = checkout / config
    if config.is_file():
        return subprocess.call(["serve", "run", str(config)])
    if args.config != DEFAULT_CONFIG:
        print(f"kvfleet serve: no such config file: {args.config}", file=sys.stderr)
        return 2
    print(f"kvfleet serve: {DEFAULT_CONFIG} not found (no checkout here); starting deployments.app:build_app "
          "with the built-in defaults on http://127.0.0.1:8000", file=sys.stderr)
    return subprocess.call(["serve", "run", "deployments.app:build_app"])


def _stats(args: argparse.Namespace, rest: list[str]) -> int:
    from kvpool.stats_cli import main as stats_main

    return stats_main(rest)


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    """Run benchmarks/serving_report.py of the checkout in its own process: the installed packages
    never import benchmarks/ (one-way layers), and a wheel has no benchmarks to run."""
    checkout = find_checkout()
    if checkout is None:
        print(_NO_CHECKOUT.format(what="bench", needs="benchmarks/ and their data"), file=sys.stderr)
        return 2
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    # the working directory stays the caller's, so relative paths in ``rest`` mean what they say
    return subprocess.call([sys.executable, "-m", "benchmarks.serving_report", *rest],
                           env={**os.environ, "PYTHONPATH": path})


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="kvfleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the embedded model to a cached safetensors copy")
    prep.add_argument("--cache-dir", default=None)
    demo = sub.add_parser("demo", help="engine demo without Ray")
    demo.add_argument("--press", default=None, help="default: AppConfig's default_press")
    demo.add_argument("--ratio", type=float, default=None, help="default: the default press's ratio")
    serve = sub.add_parser("serve", help="run a Serve config (default configs/cluster.yaml)")
    serve.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
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
