"""The session directory: what the router remembers about each session it routes.

``SessionRoute`` records the session's home deployment (the LiteLLM deployment id that answers
its questions), the deployment-local session id of every copy, and the context + press it was
loaded with, so that a session whose home is down can be rebuilt on another deployment. A route
found by asking the deployments (a session created without the router) has no context: it is
routable but cannot be rebuilt.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class SessionRoute:
    session_id: str                      # the id the client uses (the first copy's deployment-local id)
    model_group: str                     # LiteLLM model_name
    home: str                            # LiteLLM deployment id (model_info.id) that answers now
    copies: dict[str, str]               # deployment id -> that deployment's session id
    context: str | list[dict[str, Any]] | None = None   # None: not rebuildable
    press: dict[str, Any] | None = None
    ttl_s: float | None = None
    rebuilds: int = 0
    created_s: float = field(default_factory=time.time)

    @property
    def rebuildable(self) -> bool:
        return self.context is not None

    def home_session_id(self) -> str:
        return self.copies[self.home]

    def moved_to(self, deployment_id: str, deployment_session_id: str, rebuilt: bool) -> "SessionRoute":
        """A copy of this route whose home is ``deployment_id``."""
        return replace(self, home=deployment_id, copies={**self.copies, deployment_id: deployment_session_id},
                       rebuilds=self.rebuilds + int(rebuilt))

    def without_copy(self, deployment_id: str) -> "SessionRoute":
        return replace(self, copies={k: v for k, v in self.copies.items() if k != deployment_id})


class SessionDirectory(abc.ABC):
    """Thread-safe map session id -> SessionRoute. Implementations: one file each, see registry."""

    @abc.abstractmethod
    def get(self, session_id: str) -> SessionRoute | None: ...

    @abc.abstractmethod
    def put(self, route: SessionRoute) -> None:
        """Insert or replace the route of ``route.session_id``."""

    @abc.abstractmethod
    def delete(self, session_id: str) -> bool:
        """Forget a session; False when it was unknown."""

    @abc.abstractmethod
    def routes(self, model_group: str | None = None) -> list[SessionRoute]:
        """Every route (of one model group), oldest first."""

    def homes(self, model_group: str) -> dict[str, int]:
        """deployment id -> number of sessions homed there (for balanced placement)."""
        counts: dict[str, int] = {}
        for route in self.routes(model_group):
            counts[route.home] = counts.get(route.home, 0) + 1
        return counts
