"""Errors a serving replica raises that the ingress maps to HTTP statuses (deployments.ingress.errors).

They live here, not beside the actor that raises them, so the ingress process imports no actor
(and through it the KV pool and transfer) just to recognise one exception.
"""

from __future__ import annotations

from kvpool.errors import KVFleetError


class MissingCache(KVFleetError):
    """This decode actor holds no cache for the session: it was lost (e.g. the actor restarted)
    and the control plane is about to rebuild it, or it moved (HTTP 409: retry shortly)."""
