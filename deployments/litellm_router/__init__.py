"""LiteLLM integration: route over several kvfleet deployments with session affinity.

- ``SessionAffinityStrategy`` (strategy.py): LiteLLM custom routing strategy (``register_plugin``):
  a session's questions go to the deployment holding it; requests without one are balanced; a
  session whose deployment is down is rebuilt on another one from its stored context.
- ``KvfleetRouterClient`` (client.py): a ``litellm.Router`` with the strategy plus the sessions API.
- ``proxy_hooks`` (proxy_hooks.py): the same for ``litellm --config configs/litellm.yaml``, with
  ``POST /v1/sessions`` on the proxy.
- ``SessionService`` (sessions.py) acts, ``directory/`` remembers, ``endpoint.py`` talks HTTP.

Imports litellm, httpx, fastapi and pydantic; never ray.
"""

from deployments.litellm_router.client import KvfleetRouterClient
from deployments.litellm_router.config import KvfleetRouterConfig
from deployments.litellm_router.errors import (
    KvfleetRouterError,
    NoDeploymentError,
    SessionLostError,
    UnknownSessionError,
)
from deployments.litellm_router.sessions import SessionService
from deployments.litellm_router.strategy import SessionAffinityStrategy

__all__ = ["KvfleetRouterClient", "KvfleetRouterConfig", "KvfleetRouterError", "NoDeploymentError",
           "SessionAffinityStrategy", "SessionLostError", "SessionService", "UnknownSessionError"]
