"""KvfleetRouterClient: a real ``litellm.Router`` over several kvfleet deployments, with session
affinity, failover, and the sessions API (load once, ask many) in one object.

    client = KvfleetRouterClient.from_config("configs/litellm.yaml")
    session = client.create_session("kvfleet", context=open("contract.txt").read())
    reply = await client.router.acompletion(model="kvfleet", session_id=session["id"],
                                            messages=[{"role": "user", "content": "Who signed?"}])

``client.router`` is the ``litellm.Router``; questions go through its ``acompletion`` (streaming
included) with ``session_id=`` (or ``extra_body={"session_id": ...}`` or
``metadata={"session_id": ...}``). Session calls exist as coroutines (``acreate_session``...) and
as blocking wrappers for code without an event loop; those run every coroutine on one event loop
of the client's own (a daemon thread), because LiteLLM caches HTTP clients bound to the loop that
made them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import litellm

from deployments.litellm_router.config import KvfleetRouterConfig, kvfleet_router_config, read_litellm_config
from deployments.litellm_router.directory import SessionDirectory, make_directory
from deployments.litellm_router.errors import InvalidListingError, NoDeploymentError, UnknownSessionError
from deployments.litellm_router.sessions import SessionService
from deployments.litellm_router.strategy import SessionAffinityStrategy

T = TypeVar("T")


class KvfleetRouterClient:
    def __init__(self, router: Any, config: KvfleetRouterConfig | None = None,
                 directory: SessionDirectory | None = None):
        """Attach kvfleet session routing to an existing ``litellm.Router`` (the proxy's own, for
        instance): registers SessionAffinityStrategy on it. ``from_model_list`` / ``from_config``
        build the router too."""
        self.config = config or KvfleetRouterConfig()
        self.router = router
        self.sessions = SessionService(directory or make_directory(self.config.directory), self.config)
        self.strategy = SessionAffinityStrategy(self.router, self.sessions, self.config)
        self.router.register_plugin(self.strategy)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    @classmethod
    def from_model_list(cls, model_list: list[dict[str, Any]], router_settings: Mapping[str, Any] | None = None,
                        config: KvfleetRouterConfig | None = None) -> "KvfleetRouterClient":
        """A new ``litellm.Router(model_list=..., **router_settings)`` with kvfleet routing."""
        return cls(litellm.Router(model_list=model_list, **dict(router_settings or {})), config)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **config_overrides: Any) -> "KvfleetRouterClient":
        """Build from a LiteLLM config file (``model_list``, ``router_settings``, ``kvfleet_router``);
        ``config_overrides`` replace fields of ``kvfleet_router`` (e.g. ``directory={"store": "memory"}``)."""
        data = read_litellm_config(path)
        config = kvfleet_router_config(data)
        if config_overrides:
            config = KvfleetRouterConfig.model_validate({**config.model_dump(), **config_overrides})
        return cls.from_model_list(data["model_list"], data.get("router_settings"), config)

    def deployments(self, model: str) -> list[Mapping[str, Any]]:
        """Every deployment of the model group; raises NoDeploymentError for an unknown group."""
        found = list(self.router.registry().deployments(model, source="all"))
        if not found:
            raise NoDeploymentError(f"model group {model!r} is not in the model_list; "
                                    f"known: {sorted(self.router.registry().names())}")
        return found

    # ---- sessions (coroutines) ----------------------------------------------------------------
    async def acreate_session(self, model: str, context: str | None = None, *, documents: list[str] | None = None,
                              messages: list[dict[str, Any]] | None = None, press: dict[str, Any] | None = None,
                              ttl_s: float | None = None) -> dict[str, Any]:
        """Load a context (exactly one of ``context``, ``documents``, ``messages``) on one deployment
        of ``model``; returns kvfleet's session view (``id``, ``tokens_read``, ``tokens_kept``,
        ``bytes_stored``...) and ``router`` (home deployment, copies)."""
        given = [v for v in (context, documents, messages) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of context, documents or messages")
        value = "\n\n".join(documents) if documents is not None else given[0]
        return await self.sessions.create(model, self.deployments(model), value, press, ttl_s)

    async def aget_session(self, model: str | None, session_id: str) -> dict[str, Any]:
        """The home deployment's view of the session, with ``router``. ``model`` None: the group the
        directory recorded for it (or the only configured group)."""
        return await self.sessions.describe(session_id, self.deployments(self._group_of(model, session_id)))

    async def aupdate_session(self, model: str | None, session_id: str, **changes: Any) -> dict[str, Any]:
        """PATCH the session (``ttl_s`` | ``expire_time``, ``pinned``) on its home deployment."""
        return await self.sessions.update(session_id, self.deployments(self._group_of(model, session_id)), changes)

    async def alist_sessions(self, model: str | None, **listing: Any) -> dict[str, Any]:
        """A page of ``model``'s sessions known to the router (``limit``, ``after``, ``order``, ``state``);
        ``model`` None: the only configured group. Raises InvalidListingError."""
        if model is None:
            groups = self.config.model_groups or []
            if len(groups) != 1:
                raise InvalidListingError("name the model group: GET /v1/sessions?model=<model_name>")
            model = groups[0]
        return await self.sessions.list(model, self.deployments(model), **listing)

    async def adelete_session(self, model: str | None, session_id: str) -> bool:
        return await self.sessions.delete(session_id, self.deployments(self._group_of(model, session_id)))

    def _group_of(self, model: str | None, session_id: str) -> str:
        if model is not None:
            return model
        route = self.sessions.directory.get(session_id)
        if route is not None:
            return route.model_group
        if self.config.model_groups is not None and len(self.config.model_groups) == 1:
            return self.config.model_groups[0]
        raise UnknownSessionError(f"session {session_id!r} is not in the router's directory; name its model "
                                  "group (?model=<model_name>) to look for it on the deployments")

    async def acompletion(self, model: str, messages: list[dict[str, Any]], session_id: str | None = None,
                          **kwargs: Any) -> Any:
        """``router.acompletion`` with the session named (streaming with ``stream=True``)."""
        if session_id is not None:
            kwargs["session_id"] = session_id
        return await self.router.acompletion(model=model, messages=messages, **kwargs)

    # ---- blocking wrappers --------------------------------------------------------------------
    def create_session(self, model: str, context: str | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.run(self.acreate_session(model, context, **kwargs))

    def get_session(self, model: str | None, session_id: str) -> dict[str, Any]:
        return self.run(self.aget_session(model, session_id))

    def update_session(self, model: str | None, session_id: str, **changes: Any) -> dict[str, Any]:
        return self.run(self.aupdate_session(model, session_id, **changes))

    def list_sessions(self, model: str | None, **listing: Any) -> dict[str, Any]:
        return self.run(self.alist_sessions(model, **listing))

    def delete_session(self, model: str | None, session_id: str) -> bool:
        return self.run(self.adelete_session(model, session_id))

    def completion(self, model: str, messages: list[dict[str, Any]], session_id: str | None = None,
                   **kwargs: Any) -> Any:
        """Blocking ``acompletion`` (not ``router.completion``: session routing is asynchronous)."""
        return self.run(self.acompletion(model, messages, session_id, **kwargs))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the client's event loop and wait for it (bounded by twice
        ``session_timeout_s``; every call inside has its own, shorter timeout)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
            return future.result(timeout=2 * self.config.session_timeout_s)
        coroutine.close()
        raise RuntimeError("called the blocking KvfleetRouterClient API inside an event loop; await the "
                           "a-prefixed coroutine instead (acreate_session, acompletion, ...)")

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="kvfleet-router-loop", daemon=True).start()
            return self._loop
