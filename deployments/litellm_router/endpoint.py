"""A LiteLLM deployment seen as a kvfleet HTTP endpoint, and the sessions-API calls made on it.

A kvfleet deployment in a LiteLLM ``model_list`` looks like::

    - model_name: kvfleet                       # the model group clients ask for
      litellm_params: {model: openai/embedded:smollm2-135m-instruct,
                       api_base: http://127.0.0.1:8000/a/v1, api_key: os.environ/KVFLEET_API_KEY}
      model_info: {id: kvfleet-a}               # a stable id: the session directory stores it

``api_base`` ends with ``/v1``; the Serve health route is ``<root>/health`` and the sessions API
``<root>/v1/sessions``. Every call has a timeout; errors become DeploymentRequestError with the
deployment's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from deployments.litellm_router.config import resolve_secret
from deployments.litellm_router.errors import DeploymentRequestError, RouterConfigError


@dataclass(frozen=True)
class KvfleetEndpoint:
    deployment_id: str
    model_group: str
    api_base: str           # e.g. http://host:8000/a/v1
    served_model: str       # kvfleet's model name (litellm_params.model without the provider prefix)
    api_key: str | None

    @classmethod
    def from_deployment(cls, deployment: Mapping[str, Any]) -> "KvfleetEndpoint":
        params = deployment.get("litellm_params") or {}
        info = deployment.get("model_info") or {}
        model, api_base = params.get("model"), params.get("api_base")
        if not isinstance(model, str) or "/" not in model or not isinstance(api_base, str):
            raise RouterConfigError(f"deployment {deployment.get('model_name')!r}: kvfleet deployments need "
                                    "litellm_params.model 'openai/<kvfleet model>' and litellm_params.api_base")
        if not info.get("id"):
            raise RouterConfigError(f"deployment {deployment.get('model_name')!r} at {api_base}: set model_info.id "
                                    "(a stable id; the session directory records which deployment holds a session)")
        key = resolve_secret(params.get("api_key"))
        return cls(deployment_id=str(info["id"]), model_group=str(deployment.get("model_name")),
                   api_base=api_base.rstrip("/"), served_model=model.split("/", 1)[1],
                   api_key=key if isinstance(key, str) and key else None)

    @property
    def root(self) -> str:
        return self.api_base.removesuffix("/v1")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def is_healthy(self, timeout_s: float) -> bool:
        """True when ``GET <root>/health`` answers 200 within ``timeout_s``."""
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                return (await client.get(f"{self.root}/health", headers=self._headers())).status_code == 200
        except httpx.HTTPError:
            return False

    async def create_session(self, context: str | list[dict[str, Any]], press: dict[str, Any] | None,
                             ttl_s: float | None, timeout_s: float) -> dict[str, Any]:
        """POST /v1/sessions (waits until the session is ready); returns kvfleet's session view."""
        body: dict[str, Any] = {"model": self.served_model,
                                **({"messages": context} if isinstance(context, list) else {"context": context})}
        if press is not None:
            body["press"] = press
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return await self._call("POST", "/v1/sessions", timeout_s, json=body)

    async def get_session(self, session_id: str, timeout_s: float) -> dict[str, Any] | None:
        """kvfleet's view of the session, or None when this deployment does not hold it (404)."""
        try:
            return await self._call("GET", f"/v1/sessions/{session_id}", timeout_s)
        except DeploymentRequestError as exc:
            if exc.status_code == 404:
                return None
            raise

    async def update_session(self, session_id: str, changes: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """PATCH /v1/sessions/{id} with ``changes`` (``ttl_s`` | ``expire_time``, ``pinned``); the new view."""
        return await self._call("PATCH", f"/v1/sessions/{session_id}", timeout_s, json=changes)

    async def delete_session(self, session_id: str, timeout_s: float) -> bool:
        try:
            await self._call("DELETE", f"/v1/sessions/{session_id}", timeout_s)
            return True
        except DeploymentRequestError as exc:
            if exc.status_code == 404:
                return False
            raise

    async def _call(self, method: str, path: str, timeout_s: float, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.root}{path}"
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TimeoutException:
            raise DeploymentRequestError(f"{method} {url} timed out after {timeout_s} s", 504) from None
        except httpx.HTTPError as exc:
            raise DeploymentRequestError(f"{method} {url} failed: {exc!r}; is deployment "
                                         f"{self.deployment_id!r} running?", 503) from None
        if response.status_code >= 400:
            raise DeploymentRequestError(f"deployment {self.deployment_id!r}: {_error_message(response)}",
                                         response.status_code)
        return response.json()


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except ValueError:
        pass
    return f"HTTP {response.status_code}: {response.text[:200]}"
