"""The kvfleet a serving benchmark talks to: one it starts (tests/serving.py) or one at ``--url``.

``running_kvfleet(url=None, port=8230)`` starts a local Ray cluster and the real Serve app (two
replicas, one torch thread each, generous timeouts) and yields a ``Target``; with ``url`` it only
checks ``/health`` and yields a ``Target`` without Ray access. ``Target.owns_cluster`` says
whether in-cluster hooks (Serve handles of the replicas) are usable.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from benchmarks.serving.client import KVFleetClient

REPO = Path(__file__).resolve().parents[2]
APP_NAME = "kvfleet-bench"


def serving_helpers() -> Any:
    """tests/serving.py as a module (loaded by path: ``tests`` is not an installed package)."""
    name = "kvfleet_tests_serving"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "serving.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {REPO / 'tests' / 'serving.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def bench_args(replicas: int = 2, host_budget: str = "2GiB") -> dict[str, Any]:
    """App args: the test defaults (1 torch thread per model process) with timeouts long enough for
    16 concurrent re-prefills on 2 shared cores, and the app's default ``model.dtype: auto``
    (bfloat16 on AMX / AVX-512 BF16 CPUs: docs/dtype.md) where the tests pin float32."""
    helpers = serving_helpers()
    return helpers.small_args(
        model={"dtype": "auto"},
        replicas={"count": replicas, "torch_threads": 1, "pool": {"host_budget_bytes": host_budget}},
        limits={"request_timeout_s": 900.0, "load_timeout_s": 900.0, "max_context_tokens": 8000})


@dataclass
class Target:
    base_url: str
    client: KVFleetClient
    owns_cluster: bool
    app_name: str | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def replica_handle(self, replica: str) -> Any:
        """Serve handle of a replica deployment (only when this process started the app)."""
        if not self.owns_cluster or self.app_name is None:
            raise RuntimeError("replica handles need the app started by this benchmark (no --url)")
        from ray import serve

        return serve.get_deployment_handle(replica, app_name=self.app_name)


@contextlib.contextmanager
def running_kvfleet(url: str | None = None, port: int = 8230, args: dict[str, Any] | None = None,
                    num_cpus: int = 4) -> Iterator[Target]:
    """Yield a Target for ``url``, or for an app started here on ``port`` (torn down on exit)."""
    if url is not None:
        client = KVFleetClient(url)
        try:
            client.health()
            yield Target(url, client, owns_cluster=False)
        finally:
            client.close()
        return
    helpers = serving_helpers()
    args = args or bench_args()
    with helpers.ray_cluster(num_cpus=num_cpus):
        with helpers.serve_app(port=port, args=args, name=APP_NAME, timeout_s=600) as base_url:
            client = KVFleetClient(base_url)
            try:
                yield Target(base_url, client, owns_cluster=True, app_name=APP_NAME, args=args)
            finally:
                client.close()
