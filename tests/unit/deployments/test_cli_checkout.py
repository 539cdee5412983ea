"""``kvfleet bench`` / ``kvfleet serve`` from an installed package: they find the source checkout,
or say clearly that they need one (benchmarks/ and configs/ are not in the wheel)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
WHEEL_PACKAGES = ("deployments", "kvpool", "transfer", "control_plane")  # pyproject's packages.find


def _run(args: list[str], cwd: Path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KVFLEET_CHECKOUT", "PYTHONPATH")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    code = f"import sys; from deployments.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_bench_from_a_subdirectory_of_the_checkout_runs_the_benchmark_cli(tmp_path):
    result = _run(["bench", "--help"], cwd=REPO / "benchmarks" / "results")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower() and "run" in result.stdout


def test_installed_without_a_checkout_bench_says_what_it_needs(tmp_path):
    site = tmp_path / "site"
    for package in WHEEL_PACKAGES:  # what the wheel installs, and nothing else of the repository
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run(["bench", "run", "--quick"], cwd=elsewhere, pythonpath=str(site))
    assert result.returncode == 2
    assert "needs a kvfleet source checkout" in result.stderr and "KVFLEET_CHECKOUT" in result.stderr
    assert "Traceback" not in result.stderr

    with_env = subprocess.run([sys.executable, "-c", "import sys; from deployments.cli import main; "
                               "sys.exit(main(['bench', '--help']))"], cwd=elsewhere, capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(site), "KVFLEET_CHECKOUT": str(REPO)})
    assert with_env.returncode == 0, with_env.stderr


def test_serve_with_a_missing_explicit_config_is_a_clear_error(tmp_path):
    result = _run(["serve", "no/such.yaml"], cwd=tmp_path)
    assert result.returncode == 2 and "no such config file: no/such.yaml" in result.stderr
