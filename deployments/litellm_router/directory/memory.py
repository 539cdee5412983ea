"""In-process session directory (lost when the process ends)."""

from __future__ import annotations

import threading

from deployments.litellm_router.directory.base import SessionDirectory, SessionRoute


class MemoryDirectory(SessionDirectory):
    def __init__(self, path: str | None = None):
        del path  # accepted for a uniform constructor; nothing is stored on disk
        self._routes: dict[str, SessionRoute] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str) -> SessionRoute | None:
        with self._lock:
            return self._routes.get(session_id)

    def put(self, route: SessionRoute) -> None:
        with self._lock:
            self._routes[route.session_id] = route

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._routes.pop(session_id, None) is not None

    def routes(self, model_group: str | None = None) -> list[SessionRoute]:
        with self._lock:
            found = [r for r in self._routes.values() if model_group is None or r.model_group == model_group]
        return sorted(found, key=lambda r: r.created_s)
