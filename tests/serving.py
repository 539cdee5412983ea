"""Start real kvfleet Serve applications for tests (real Ray, real HTTP, real model).

    with ray_cluster(num_cpus=4):
        with serve_app(port=8300, args={"replicas": {"count": 2}}) as base_url:
            httpx.get(f"{base_url}/health")

Several applications can share one Ray cluster (different ``name`` / ``route_prefix``); all of
them share the HTTP port given to the first. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import httpx

MODEL = "embedded:smollm2-135m-instruct"


def small_args(**overrides: Any) -> dict:
    """App args for tests: 2 replicas, 1 torch thread, a fresh SQLite file and durable-cache directory,
    fast control ticks, knorm at 0.5 as the default press (cheaper to prefill than the app
    default, kvzip at 0.25, which tests/e2e/test_readme_defaults.py exercises), and the model in float32 whatever ``auto``
    picks on the machine, as the in-process reference engine (tests/conftest.py ``engine``) that
    answers are compared with (the bfloat16 app: tests/e2e/test_serving_bfloat16.py)."""
    scratch = Path(tempfile.mkdtemp(prefix="kvfleet-test-"))
    store = scratch / "control.sqlite3"
    args: dict[str, Any] = {
        "model": {"dtype": "float32"},
        "default_press": {"name": "knorm", "compression_ratio": 0.5},
        "replicas": {"count": 2, "torch_threads": 1, "pool": {"host_budget_bytes": "512MiB"},
                     "durable": {"dir": str(scratch / "caches")}},
        "control": {"store_path": str(store), "heartbeat_timeout_s": 30},
        "control_tick_s": 0.5,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(args.get(key), dict):
            args[key] = {**args[key], **copy.deepcopy(value)}
        else:
            args[key] = copy.deepcopy(value)
    return args


def _quiet_memory_monitor() -> None:
    """Ray's memory monitor judges the whole machine, which parallel test runs may share: it would
    kill this cluster's model actors for others' memory (the kernel's OOM killer still guards)."""
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")


def _end_leftover_driver() -> None:
    """A cluster left connected by an earlier fixture would make ``ray.init`` fail ("called twice")
    and cascade into every later module: end it, loudly."""
    import ray

    if ray.is_initialized():
        warnings.warn("a Ray driver from an earlier test was still connected; shutting it down", stacklevel=3)
        _shutdown()


@contextlib.contextmanager
def ray_cluster(num_cpus: int = 4) -> Iterator[None]:
    import ray

    _quiet_memory_monitor()
    _end_leftover_driver()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=1 << 30, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    try:
        yield
    finally:
        _shutdown()


@contextlib.contextmanager
def two_node_cluster(num_cpus_per_node: int = 2) -> Iterator[Any]:
    """A simulated 2-node Ray cluster on this machine: nodes carry resources node_a / node_b."""
    import ray
    from ray.cluster_utils import Cluster

    _quiet_memory_monitor()
    _end_leftover_driver()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": num_cpus_per_node, "resources": {"node_a": 100}, "include_dashboard": False,
        "object_store_memory": 1 << 30})
    cluster.add_node(num_cpus=num_cpus_per_node, resources={"node_b": 100}, object_store_memory=1 << 30)
    ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    try:
        yield cluster
    finally:
        _shutdown()
        cluster.shutdown()


def _shutdown() -> None:
    import ray
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()


def wait_healthy(base_url: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise TimeoutError(f"{base_url} not healthy after {timeout_s} s (last error: {last})")


@contextlib.contextmanager
def serve_app(port: int, args: dict | None = None, name: str = "kvfleet", route_prefix: str = "/",
              timeout_s: float = 300.0) -> Iterator[str]:
    """Deploy one kvfleet application (inside an existing Ray cluster); yields its base URL."""
    from ray import serve

    from deployments.app import build_app

    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(args or small_args()), name=name, route_prefix=route_prefix, blocking=False)
    base_url = f"http://127.0.0.1:{port}{route_prefix.rstrip('/')}"
    wait_healthy(base_url, timeout_s)
    # the control plane must have heard from every replica before sessions can be placed
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = httpx.get(f"{base_url}/admin/health", timeout=10).json() if _has_admin(base_url) else None
        if data is None or all(r.get("alive") for r in data.get("replicas", [])) and data.get("replicas"):
            break
        time.sleep(1)
    try:
        yield base_url
    finally:
        with contextlib.suppress(Exception):
            serve.delete(name)


def _has_admin(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/admin/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def create_session(base_url: str, context: Any, press: dict | None = None, **extra: Any) -> dict:
    body = {"model": MODEL, **({"messages": context} if isinstance(context, list) else {"context": context}), **extra}
    if press is not None:
        body["press"] = press
    response = httpx.post(f"{base_url}/v1/sessions", json=body, timeout=600)
    response.raise_for_status()
    return response.json()
