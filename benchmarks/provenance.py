"""What a result was measured on: machine, load, package versions, git commit.

Every benchmark JSON carries ``provenance()`` so a figure can be traced to the code and the
machine that produced it. Timings on a shared machine are noisy; the load average recorded at
start and end says how noisy.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
PACKAGES = ("torch", "transformers", "kvpress", "ray", "fastapi", "httpx", "nixl", "matplotlib")


def git_commit() -> dict[str, Any]:
    """``{"commit": short sha or None, "dirty": bool}`` of the repository holding the benchmarks."""
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    commit = run("rev-parse", "--short", "HEAD") or None
    dirty = bool(run("status", "--porcelain", "--untracked-files=no", "--", "benchmarks"))
    return {"commit": commit, "benchmarks_dirty": dirty}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS, Python, CUDA device if any, and the current 1/5/15-minute load."""
    import torch

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(),
            "platform": platform.platform(), "python": platform.python_version(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads(), "load_average": [round(x, 1) for x in os.getloadavg()]}


def provenance(config: dict[str, Any]) -> dict[str, Any]:
    """The block every result file starts with; ``config`` is the benchmark's own settings."""
    return {"machine": machine(), "versions": _versions(), "git": git_commit(), "config": config,
            "started_unix_s": round(time.time(), 1)}


def finish(result: dict[str, Any], started_s: float) -> dict[str, Any]:
    """Stamp wall time and the load average at the end onto ``result`` (returned for chaining)."""
    result["runtime_s"] = round(time.perf_counter() - started_s, 1)
    result["load_average_end"] = [round(x, 1) for x in os.getloadavg()]
    return result
