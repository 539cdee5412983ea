"""Helpers for the LiteLLM e2e tests: a LiteLLM config pointing at test deployments, and a real
``litellm`` proxy process started from it on 127.0.0.1 (bounded waits, log kept for failures)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "litellm.yaml"
GROUP = "kvfleet"


# LiteLLM's proxy server imports these (litellm[proxy] cannot be installed: it pins an unpublished
# litellm-proxy package); module name -> pip requirement
PROXY_MODULES = {"orjson": "orjson==3.13.0", "backoff": "backoff==2.2.1", "apscheduler": "apscheduler==3.11.3",
                 "multipart": "python-multipart==0.0.34", "jwt": "pyjwt==2.15.1", "nacl": "pynacl==1.6.2",
                 "fastapi_sso": "fastapi-sso==0.23.0", "semver": "semver==3.1.2", "expression": "expression==5.8.0",
                 "redis": "redis==8.1.0", "mcp": "mcp==2.3.0", "soundfile": "soundfile==0.14.0"}


def missing_proxy_requirements() -> list[str]:
    """pip requirements of the LiteLLM proxy server that are not installed."""
    return [req for module, req in PROXY_MODULES.items() if importlib.util.find_spec(module) is None]


def litellm_config(api_bases: dict[str, str], directory_path: Path) -> dict:
    """configs/litellm.yaml with each deployment's api_base replaced ({model_info.id: api_base})
    and the session directory in ``directory_path``; everything else as shipped."""
    data = yaml.safe_load(CONFIG.read_text())
    for deployment in data["model_list"]:
        deployment["litellm_params"]["api_base"] = api_bases[deployment["model_info"]["id"]]
    data["kvfleet_router"]["directory"]["path"] = str(directory_path)
    return data


@contextlib.contextmanager
def litellm_proxy(config: dict, workdir: Path, port: int, timeout_s: float = 300.0) -> Iterator[tuple[str, str]]:
    """Start ``litellm --config <workdir>/litellm.yaml`` on 127.0.0.1:``port``; yields (base_url,
    master_key). The process is stopped (SIGTERM, then SIGKILL) on exit."""
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    key = "sk-kvfleet-test-" + secrets.token_hex(16)
    env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log_path = workdir / "litellm-proxy.log"
    litellm_bin = Path(sys.executable).with_name("litellm")
    with open(log_path, "w") as log:
        process = subprocess.Popen([str(litellm_bin), "--config", str(path), "--host", "127.0.0.1",
                                    "--port", str(port), "--num_workers", "1"],
                                   cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log_path, timeout_s)
        yield base_url, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait_ready(base_url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"litellm proxy exited with {process.returncode}:\n{log_tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health/liveliness", timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise TimeoutError(f"litellm proxy not ready after {timeout_s} s:\n{log_tail(log_path)}")


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# ---- kvfleet side ---------------------------------------------------------------------------------

E2E_PORT = int(os.environ.get("KVFLEET_E2E_PORT", "8310"))  # the Serve HTTP port of the e2e session
START_TIMEOUT_S = 900.0
FILLER = "The committee discussed the annual budget, the new library wing and several unrelated matters. "
QUESTIONS = ("What is the secret code of the vault?", "Who keeps the key?", "What colour is the door?",
             "Repeat the secret code.", "Summarise the document in five words.")


def session_context(i: int) -> str:
    """A short document of its own for session ``i`` (distinct facts, so answers differ)."""
    codes = ("7341", "2958", "6604", "1187", "5521", "3090")
    keepers = ("Alice", "Bruno", "Chen", "Dana", "Emil", "Farah")
    colours = ("red", "green", "blue", "yellow", "black", "white")
    return (FILLER * 2 + f"The secret code of the vault is {codes[i]}. {keepers[i]} keeps the key. "
            f"The door is {colours[i]}. " + FILLER * 2)


def user(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def session_on(base_url: str, session_id: str) -> dict | None:
    """kvfleet's view of a session on one app, or None when that app does not hold it."""
    response = httpx.get(f"{base_url}/v1/sessions/{session_id}", timeout=60)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def calls_of(tool_calls) -> list[tuple[str, str, str]]:
    """(id, name, arguments) of each tool call of a reply message (openai or LiteLLM objects)."""
    return [(c.id, c.function.name, c.function.arguments) for c in tool_calls or ()]


def assemble_tool_stream(chunks) -> dict:
    """The first choice's ``{"content", "calls": [(id, name, arguments)], "finish_reason"}`` put
    together from streamed chat chunks (OpenAI tool-call deltas: index, id and name once, the
    arguments in pieces), as a client does."""
    content, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for piece in choice.delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or piece.id
                call["name"] = call["name"] or piece.function.name
                call["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    return {"content": content, "finish_reason": finish,
            "calls": [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]}


def ask_direct(base_url: str, session_id: str, question: str, max_tokens: int) -> str:
    """The app's own greedy answer (no router): what a correctly routed question must get."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=600, max_retries=0)
    reply = client.chat.completions.create(model="embedded:smollm2-135m-instruct", messages=user(question),
                                           temperature=0, max_tokens=max_tokens, extra_body={"session_id": session_id})
    return reply.choices[0].message.content
