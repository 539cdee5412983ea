"""Helpers for the LiteLLM e2e tests: a LiteLLM config pointing at test deployments, and a real
``litellm`` proxy process started from it on 127.0.0.1 (bounded waits, log kept for failures)."""

from __future__ import annotations

import contextlib
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
