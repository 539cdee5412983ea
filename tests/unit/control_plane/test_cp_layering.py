"""control_plane stays pure: no Ray, no deployments, small files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "control_plane"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_importing_every_module_loads_no_ray():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in SOURCES]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'deployments'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_sources_import_only_downstream_packages():
    forbidden = re.compile(r"^\s*(from|import)\s+(ray|deployments)\b", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in SOURCES if forbidden.search(p.read_text())]
    assert offenders == []


def test_files_stay_readable_in_one_sitting():
    long_files = {str(p.relative_to(REPO)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 300}
    assert long_files == {}
