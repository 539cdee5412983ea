"""Errors a serving replica raises that the ingress maps to HTTP statuses (deployments.ingress.errors).

They live here, not beside the actor that raises them, so the ingress process imports no actor
(and through it the KV pool and transfer) just to recognise one exception.
"""

from __future__ import annotations

from kvpool.errors import KVFleetError


class MissingCache(KVFleetError):
    """This decode actor holds no cache for the session: it was lost (e.g. the actor restarted)
    and the control plane is about to rebuild it, or it moved (HTTP 409: retry shortly)."""


class ActorsRestarting(KVFleetError):
    """This replica is restarting a model actor (one died): new work that needs it would wait seconds
    for the model to load. Raised at once, before any work starts, when the application has other
    replicas and the request was not moved here already (deployments/serving/actor_restarts.py
    ``admit``): the ingress moves it (deployments/ingress/failover.py); HTTP 503 with
    ``Retry-After`` when it cannot. ``retry_after_s``: how many seconds the replica's last restart took."""

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple:  # crosses Ray process boundaries: rebuilt with both arguments
        return (type(self), (str(self), self.retry_after_s))
