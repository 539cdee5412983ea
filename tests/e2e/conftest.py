"""E2E fixtures: ONE real kvfleet application per test session (real Ray Serve, real model, real
HTTP, the official ``openai`` client), plus the in-process engine as the reference answerer.

- ``app_url``: the shared application (2 replicas, ``limits.max_context_tokens`` lowered to
  ``MAX_CONTEXT_TOKENS`` so a 413 is cheap to provoke). Started once, on ``PORT``.
- ``extra_app(name, args)``: a further application on the same Ray cluster and HTTP port (its own
  route prefix), for modules whose config must differ (API keys, a tiny KV budget). Use it from a
  module-scoped fixture so it lives only as long as that module.
- ``reference``: answers computed by the in-process ``KVEngine`` (tests/conftest.py's ``engine``)
  for the same context + press + question, greedy - what the server must answer token for token.

Every wait is bounded; nothing asserts on time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.conftest import document
from tests.serving import MODEL, ray_cluster, serve_app, small_args

PORT = int(os.environ.get("KVFLEET_E2E_PORT", "8310"))
MAX_CONTEXT_TOKENS = 2000
START_TIMEOUT_S = 900.0
HTTP_TIMEOUT_S = 600.0
DEFAULT_PRESS = {"name": "knorm", "compression_ratio": 0.5}
QUESTIONS = ("What is the secret code of the vault?", "Where was Alice born?", "When is the meeting?")


@pytest.fixture(scope="package")
def ray_session() -> Iterator[None]:
    # package scope: the cluster ends with the last e2e test, before other packages start theirs
    # A fresh local cluster even when another Ray cluster runs on this machine (ray.init() would
    # otherwise join the most recently started one), in its own temp dir so that other drivers on
    # this machine do not join it either. On a loaded 2-core machine the raylet can miss the GCS's
    # default health checks for a while: tolerate that instead of losing the node. Ray's memory
    # monitor judges the whole machine's memory, which other test runs share: it would kill this
    # cluster's model actors for their memory (the kernel's OOM killer still guards the machine).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ADDRESS", "local")
        env.setenv("RAY_TMPDIR", tempfile.mkdtemp(prefix="kvfleet-e2e-"))
        env.setenv("RAY_health_check_timeout_ms", "30000")
        env.setenv("RAY_health_check_failure_threshold", "20")
        env.setenv("RAY_memory_monitor_refresh_ms", "0")
        with ray_cluster(num_cpus=4):
            yield


@pytest.fixture(scope="package")
def app_url(ray_session: None) -> Iterator[str]:
    args = small_args(limits={"max_context_tokens": MAX_CONTEXT_TOKENS})
    with serve_app(PORT, args, timeout_s=START_TIMEOUT_S) as url:
        yield url


@pytest.fixture(scope="package")
def extra_app(ray_session: None) -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with extra_app("secure", args) as url:`` deploys another app at ``/<name>`` on ``PORT`` (Serve
    has one HTTP port per cluster: whichever app starts first opens it)."""

    @contextlib.contextmanager
    def deploy(name: str, args: dict) -> Iterator[str]:
        with serve_app(PORT, args, name=name, route_prefix=f"/{name}", timeout_s=START_TIMEOUT_S) as url:
            yield url

    return deploy


@pytest.fixture(scope="package")
def client(app_url: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{app_url}/v1", api_key="unused", timeout=HTTP_TIMEOUT_S, max_retries=0)


@pytest.fixture(scope="package")
def http(app_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=HTTP_TIMEOUT_S) as c:
        yield c


@pytest.fixture(scope="package")
def facts_session(app_url: str) -> dict:
    """A READY session holding tests/conftest.py's ``document()`` under the default press."""
    return create(app_url, {"context": document()})


class Reference:
    """Greedy answers of the in-process engine, with prefilled caches reused per (context, press)."""

    def __init__(self, engine: Any):
        self.engine = engine
        self._caches: dict[tuple, Any] = {}

    def cache(self, context: str | list[dict], press: dict) -> Any:
        from kvpool.press_spec import PressSpec

        key = (repr(context), repr(sorted(press.items())))
        if key not in self._caches:
            with _torch_threads(1):  # the replicas run 1 torch thread: same reductions, same argmax
                self._caches[key] = self.engine.prefill(context, PressSpec.model_validate(press))
        return self._caches[key]

    def answer(self, context: str | list[dict], question: list[dict], max_tokens: int = 32,
               press: dict | None = None, **sampling: Any) -> tuple[str, int, str]:
        """(text, completion token count, finish_reason) for ``question`` on ``context``."""
        from deployments.engine.sampling import SamplingParams

        ckv = self.cache(context, press or DEFAULT_PRESS)
        with _torch_threads(1):
            text, tokens, finish = self.engine.answer(
                ckv, question, SamplingParams(max_tokens=max_tokens, temperature=0.0, **sampling))
        return text, len(tokens), finish

    def plain(self, messages: list[dict], max_tokens: int = 32) -> tuple[str, int, str]:
        """What a session-less request must answer: the server's own plain-prompt layout."""
        from deployments.config import PlainRequestConfig
        from deployments.common.plain_prompt import PlainPromptPlanner

        plan = PlainPromptPlanner(PlainRequestConfig()).plan(messages)
        return self.answer(plan.prefix, plan.suffix, max_tokens, plan.press)

    def plain_prompt_tokens(self, messages: list[dict]) -> int:
        """The whole prompt of a session-less request, in tokens (context part + final turn)."""
        from deployments.config import PlainRequestConfig
        from deployments.common.plain_prompt import PlainPromptPlanner

        plan = PlainPromptPlanner(PlainRequestConfig()).plan(messages)
        ckv = self.cache(plan.prefix, plan.press)
        return ckv.meta.original_tokens + len(self.engine.question_ids(ckv, plan.suffix))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def reference(engine: Any) -> Reference:
    return Reference(engine)


# ---- helpers used by the test modules -------------------------------------------------------------

def create(base_url: str, body: dict, headers: dict | None = None, expect: int = 200) -> dict:
    """POST /v1/sessions with ``model`` filled in; asserts the status, returns the JSON."""
    response = httpx.post(f"{base_url}/v1/sessions", json={"model": MODEL, **body}, headers=headers,
                          timeout=HTTP_TIMEOUT_S)
    assert response.status_code == expect, response.text
    return response.json()


def user(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The reply is ``status`` with OpenAI error JSON ``{"error": {"message", "type", "code"}}``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert {"message", "type", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def metric_values(base_url: str, name: str) -> dict[str, float]:
    """``{label string: value}`` of one Prometheus metric family from GET /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            if key == name or key.startswith(name + "{"):
                out[key[len(name):]] = float(value)
    return out
