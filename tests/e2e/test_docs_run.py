"""Issue 14 item 6: every command and code block in README.md and docs/*.md runs as written,
against the shared live app (its address replaces ``127.0.0.1:8000``). Blocks marked
``<!-- doc-test: skip REASON -->`` are reported as skipped with their reason; conventions in
docs/doc-tests.md. ``curl`` fails on an HTTP error here (``--fail-with-body``), so a documented
request that the server rejects fails the test. The app is shared with the rest of tests/e2e: a
block that leaves a replica draining or dead fails here, naming itself (a documented fuzzer run
once drained a replica and made a later, unrelated test fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlparse

import httpx
import pytest

from tests.doc_blocks import REPO, RUNNABLE, Block, all_blocks, pointed_at

pytestmark = pytest.mark.e2e
BLOCK_TIMEOUT_S = 600
_CURL_FAILS_ON_HTTP_ERRORS = "curl() { command curl --fail-with-body \"$@\"; }\n"

CODE_BLOCKS = [b for b in all_blocks() if b.lang in RUNNABLE]


@pytest.mark.parametrize("block", CODE_BLOCKS, ids=lambda b: b.id)
def test_doc_block_runs_as_written(app_url: str, block: Block, tmp_path):
    if block.skip:
        pytest.skip(block.skip)
    before = _harmed(app_url)
    assert not before, f"replicas {before} were already draining or dead before {block.id}"
    code = pointed_at(block.code, urlparse(app_url).netloc)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"}
    if RUNNABLE[block.lang] == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", _CURL_FAILS_ON_HTTP_ERRORS + code]
    else:
        argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, (f"{block.id} failed ({done.returncode})\n--- code\n{code}\n--- stdout\n"
                                  f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    harmed = _harmed(app_url)
    assert not harmed, f"{block.id} left replicas {harmed} draining or dead on the shared app; skip it or point it " \
                       "at its own server"


def _harmed(app_url: str) -> list[str]:
    replicas = httpx.get(f"{app_url}/admin/health", timeout=60).json()["replicas"]
    return [r["replica_id"] for r in replicas if r["draining"] or not r["alive"]]
