"""Admin actions over HTTP: post an action, poll its event until it is done or failed.

Every mutating ``/admin/...`` route returns ``{"event_id"}``; ``GET /admin/events/{id}`` answers
``{"status": pending|running|done|failed, "detail": {..., "result" | "error"}}``.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.serving.client import KVFleetClient, KVFleetHTTPError


class AdminActionFailed(RuntimeError):
    """The admin event ended ``failed``; the message carries the server's error."""


def has_route(client: KVFleetClient, path: str) -> bool:
    """False if ``path`` is not routed at all (FastAPI's own ``{"detail": "Not Found"}`` 404)."""
    response = client.http.post(path, json={}, timeout=30)
    if response.status_code != 404:
        return True
    try:
        return response.json().get("detail") != "Not Found"
    except ValueError:
        return True


def run_action(client: KVFleetClient, path: str, body: dict[str, Any], timeout_s: float = 600.0,
               poll_s: float = 0.1) -> dict[str, Any]:
    """POST ``body`` to ``path``, poll the event; returns the finished event plus ``client_wall_s``.

    Raises KVFleetHTTPError if the action is refused, AdminActionFailed if its event fails,
    TimeoutError if it is not finished within ``timeout_s``.
    """
    start = time.perf_counter()
    response = client.http.post(path, json=body)
    if response.status_code >= 400:
        raise KVFleetHTTPError(response.status_code, response.text[:500])
    event_id = response.json()["event_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = client.http.get(f"/admin/events/{event_id}", timeout=30).json()
        if event.get("status") in ("done", "failed"):
            event["client_wall_s"] = time.perf_counter() - start
            if event["status"] == "failed":
                raise AdminActionFailed(f"{path} {body}: {event.get('detail', {}).get('error')}")
            return event
        time.sleep(poll_s)
    raise TimeoutError(f"admin event {event_id} ({path}) not finished after {timeout_s} s")
