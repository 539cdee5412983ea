"""The README's curl example, run as written against an app with the DEFAULT press, answers 7341.

Issue 16: with knorm at 0.5 by default the vault example answered "7778 ..." and repeated itself.
The default is the quality benchmark's choice (kvzip at 0.25, docs/presses.md) with ``min_tokens`` below
which a context is stored uncompressed; this 43-token context is one of those, and the session
view says so. One extra app (one replica) on the shared cluster, only for this module.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from deployments.config import AppConfig
from tests.e2e.conftest import HTTP_TIMEOUT_S
from tests.serving import MODEL, small_args

README = Path(__file__).resolve().parents[2] / "README.md"
CONTEXT = "The secret code of the vault is 7341. Alice was born in Lisbon."
QUESTION = "What is the secret code of the vault?"


@pytest.fixture(scope="module")
def defaults_url(extra_app):
    args = small_args(replicas={"count": 1})
    args.pop("default_press")  # the application's own defaults, as `serve run configs/cluster.yaml` has them:
    args.pop("model")  # the default press, and model.dtype auto (bfloat16 on this machine's AMX CPU)
    with extra_app("defaults", args) as url:
        yield url


def test_readme_still_shows_this_example():
    text = README.read_text()
    assert CONTEXT in text and QUESTION in text and '"temperature": 0' in text


def test_vault_example_answers_7341_with_the_defaults(defaults_url):
    with httpx.Client(base_url=defaults_url, timeout=HTTP_TIMEOUT_S) as http:
        session = http.post("/v1/sessions", json={"model": MODEL, "context": CONTEXT})
        assert session.status_code == 200, session.text
        view = session.json()
        default = AppConfig().default_press
        assert view["press"]["name"] == default.name and view["tokens_read"] < default.min_tokens
        assert view["compression"]["applied"] is False and "min_tokens" in view["compression"]["note"]
        reply = http.post("/v1/chat/completions", headers={"X-Session-Id": view["id"]}, json={
            "model": MODEL, "temperature": 0, "messages": [{"role": "user", "content": QUESTION}]})
        assert reply.status_code == 200, reply.text
        answer = reply.json()["choices"][0]["message"]["content"]
        assert re.search(r"(?<!\d)7341(?!\d)", answer), answer
        assert "7778" not in answer


def test_presses_route_lists_every_press_and_an_artifact_press_without_its_path_is_422(defaults_url):
    from deployments.engine.presses import CATALOG

    with httpx.Client(base_url=defaults_url, timeout=HTTP_TIMEOUT_S) as http:
        listing = http.get("/v1/presses").json()
        rows = {row["name"]: row for row in listing["data"]}
        assert set(CATALOG) <= set(rows) and listing["default"]["name"] == AppConfig().default_press.name
        assert rows["kvzap"]["required"] == ["model_path"] and "local directory" in rows["kvzap"]["needs"]
        reply = http.post("/v1/sessions", json={"model": MODEL, "context": CONTEXT,
                                                "press": {"name": "kvzap", "compression_ratio": 0.5}})
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        assert "model_path" in error["message"] and "never downloads" in error["message"]


def test_readme_first_python_example_prints_the_output_it_shows(defaults_url):
    """Issue 27: the README's first Python example (default press, a contract and questions about
    it) run as written against an app with the default config prints exactly the output shown
    under it (temperature 0, one torch thread: deterministic on one machine)."""
    import subprocess
    import sys

    from tests.doc_blocks import blocks_in

    blocks = blocks_in(README.read_text(), "README.md")
    example = next(b for b in blocks if b.lang == "python")
    shown = next(b for b in blocks if b.lang == "text" and b.line > example.line)
    assert '"press":' not in example.code, "the first example must use the default press (no press in the request)"
    assert "http://127.0.0.1:8000" in example.code
    code = example.code.replace("http://127.0.0.1:8000", defaults_url)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == shown.code, f"the README shows\n{shown.code}\nthe example printed\n{done.stdout}"
