"""Retrying benchmark work that a replica restart interrupted - logged and recorded, never hidden.

Why this exists: a replica's Serve health check (``Replica._restart_if_dead``) waits 30 s for
``ready()`` of its actors; the PrefillActor runs one call at a time, so a prefill longer than that
(a 4k context, or kvzip, on a loaded 2-core machine) makes the replica judge a busy actor dead
and restart both actors. The sessions on it are lost and requests get 503/404/409 until the
control plane has rebuilt them. A unit of work hit by that is retried from the start, with new
sessions, at most ``attempts`` times; every retry lands in ``record`` (and the result JSON).
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from benchmarks.serving.admin import AdminActionFailed
from benchmarks.serving.client import KVFleetHTTPError

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({404, 409, 503})
_RAY_DEATH = ("ActorDiedError", "ActorUnavailableError", "RayActorError")


def is_restart_symptom(exc: BaseException) -> bool:
    """True for the errors a replica restart causes (see the module docstring)."""
    if isinstance(exc, KVFleetHTTPError):
        return exc.status in RETRYABLE_STATUS
    if isinstance(exc, AdminActionFailed):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & set(_RAY_DEATH)) or any(name in str(exc) for name in _RAY_DEATH)


def wait_until_healthy(target: Any, timeout_s: float = 600.0) -> None:
    """Block until ``/admin/health`` lists every replica alive (TimeoutError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = target.client.http.get("/admin/health", timeout=30)
        if response.status_code == 404:  # no admin API: nothing to wait on
            return
        replicas = response.json().get("replicas", []) if response.status_code == 200 else []
        if replicas and all(r.get("alive") for r in replicas):
            return
        time.sleep(2)
    raise TimeoutError(f"replicas not all alive after {timeout_s} s")


def with_retries(fn: Callable[[], T], target: Any, what: str, record: list[dict], attempts: int = 3,
                 log: Callable[[str], None] = print) -> T:
    """``fn()``, retried after a replica restart (at most ``attempts`` calls); other errors propagate."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - filtered right below; anything else is re-raised
            if not is_restart_symptom(exc) or attempt == attempts:
                raise
            record.append({"what": what, "attempt": attempt, "error": f"{type(exc).__name__}: {exc}"[:300],
                           "at_unix_s": round(time.time(), 1)})
            log(f"retry {attempt}/{attempts - 1} of {what} after {type(exc).__name__}: {str(exc)[:160]}")
            wait_until_healthy(target)
    raise AssertionError("unreachable")
