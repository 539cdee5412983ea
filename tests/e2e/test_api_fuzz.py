"""schemathesis, driven by the app's own OpenAPI document, against a live app (issue 19).

A bounded run - examples, coverage and fuzzing phases, every operation (admin included), positive
and negative data - with an admin key and without any key: zero server errors (5xx). The app is
its own (an admin fuzzer clears and drains), with tight limits so that every accepted request is
cheap: contexts of at most 64 tokens, at most 4 generated tokens, n <= 2. The example count and
the seed are printed in the test output; ``KVFLEET_FUZZ_SEED`` / ``KVFLEET_FUZZ_EXAMPLES`` change
them (a failure prints the exact requests to reproduce). tests/e2e/fuzz_hooks.py keeps the run
from draining the app's only replica (which would make every later session a correct 503).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.serving import small_args

pytestmark = pytest.mark.e2e
ADMIN_KEY = "key-fuzz-admin"
SEED = int(os.environ.get("KVFLEET_FUZZ_SEED", "19"))
MAX_EXAMPLES = int(os.environ.get("KVFLEET_FUZZ_EXAMPLES", "4"))
RUN_TIMEOUT_S = 900
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fuzz_url(extra_app) -> Iterator[str]:
    args = small_args(
        replicas={"count": 1, "torch_threads": 1, "pool": {"host_budget_bytes": "256MiB"}},
        security={"api_keys": {ADMIN_KEY: "fuzz-admin", "key-fuzz-user": "fuzz-user"}, "admin_keys": [ADMIN_KEY]},
        limits={"max_context_tokens": 64, "max_tokens_default": 4, "max_tokens_limit": 4, "max_n": 2,
                "request_timeout_s": 120, "load_timeout_s": 120},
        plain={"compression_threshold_tokens": 32})
    with extra_app("fuzz", args) as url:
        yield url


def _schemathesis() -> str:
    found = shutil.which("st") or str(Path(os.sys.executable).with_name("st"))
    assert Path(found).exists(), "schemathesis is a test extra: pip install -e '.[test]'"
    return found


@pytest.mark.parametrize("key", [ADMIN_KEY, None], ids=["admin-key", "no-key"])
def test_fuzzing_the_openapi_document_finds_no_server_error(fuzz_url, key, tmp_path, capsys):
    command = [_schemathesis(), "run", f"{fuzz_url}/openapi.json", "--url", fuzz_url,
               "--phases", "examples,coverage,fuzzing", "--mode", "all", "--checks", "not_a_server_error",
               "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1", "--no-shrink",
               "--request-timeout", "180", "--suppress-health-check", "all", "--max-failures", "20",
               "--report", "junit", "--report-dir", str(tmp_path)]
    if key:
        command += ["-H", f"Authorization: Bearer {key}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks",
                              "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
                         cwd=tmp_path)  # schemathesis keeps a cache in its working directory
    summary = [line for line in run.stdout.splitlines()
               if re.search(r"Test cases:|Seed:|operations|Phases|passed|failed|Errors|Failures", line)]
    with capsys.disabled():
        print(f"\n[schemathesis {'admin key' if key else 'no key'}] seed={SEED} max_examples={MAX_EXAMPLES}")
        print("\n".join(summary))
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    assert re.search(r"Test cases:\s+\d+ generated", run.stdout), run.stdout[-3000:]
