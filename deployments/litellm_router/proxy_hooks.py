"""Plug kvfleet routing into a LiteLLM proxy started with ``litellm --config configs/litellm.yaml``.

The config names this module's instance as a callback::

    litellm_settings:
      callbacks: ["deployments.litellm_router.proxy_hooks.proxy_hooks"]

Importing the module mounts the sessions API (``deployments.litellm_router.sessions_api``) on the
proxy's FastAPI app. The proxy builds its ``litellm.Router`` after it loads callbacks, so the
routing strategy is attached to that router on first use: before the first request is routed
(``async_pre_call_hook`` runs before the router picks a deployment) or at the first sessions-API
call, and again if the proxy replaces its router. Settings come from the ``kvfleet_router`` block
of the proxy's config file (or the file named by ``KVFLEET_LITELLM_CONFIG``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from deployments.litellm_router.client import KvfleetRouterClient
from deployments.litellm_router.config import KvfleetRouterConfig, kvfleet_router_config, read_litellm_config
from deployments.litellm_router.errors import NoDeploymentError

log = logging.getLogger(__name__)


class KvfleetProxyHooks(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self._client: KvfleetRouterClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> KvfleetRouterClient:
        """The client bound to the proxy's current router (attaching the strategy on first use)."""
        from litellm.proxy import proxy_server

        router = proxy_server.llm_router
        if router is None:
            raise NoDeploymentError("the LiteLLM proxy has no router yet: its config needs a model_list "
                                    "of kvfleet deployments")
        if self._client is None or self._client.router is not router:
            async with self._lock:
                if self._client is None or self._client.router is not router:
                    self._client = KvfleetRouterClient(router, _config(proxy_server.user_config_file_path))
                    log.info("kvfleet session routing attached to the proxy's router")
        return self._client

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        await self.client()
        return data


def _config(proxy_config_path: str | None) -> KvfleetRouterConfig:
    path = os.environ.get("KVFLEET_LITELLM_CONFIG") or proxy_config_path
    return kvfleet_router_config(read_litellm_config(path)) if path else KvfleetRouterConfig()


def _mount(hooks: KvfleetProxyHooks) -> None:
    from litellm.proxy.auth.user_api_key_auth import user_api_key_auth
    from litellm.proxy.proxy_server import app

    from deployments.litellm_router.sessions_api import sessions_router

    app.include_router(sessions_router(hooks.client, user_api_key_auth))


proxy_hooks = KvfleetProxyHooks()
_mount(proxy_hooks)
