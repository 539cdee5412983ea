"""Where a request names its session, and how the router rewrites it for the chosen deployment.

A client names a session as the body field ``session_id`` (the openai client's ``extra_body``),
as ``metadata={"session_id": ...}``, or, through the LiteLLM proxy, with the ``X-Session-Id``
header. The router always sends the deployment's own id for that session in the body field
``session_id`` (a rebuilt copy has a different id than the one the client holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEADER = "x-session-id"


def find_session_id(request_kwargs: Mapping[str, Any]) -> str | None:
    """The session id the request carries, or None. Body field first, then extra_body, metadata
    (``metadata`` or ``litellm_metadata``), then the proxy request's ``X-Session-Id`` header."""
    candidates: list[Any] = [request_kwargs.get("session_id")]
    extra_body = request_kwargs.get("extra_body")
    if isinstance(extra_body, Mapping):
        candidates.append(extra_body.get("session_id"))
    for bucket in ("metadata", "litellm_metadata"):
        metadata = request_kwargs.get(bucket)
        if isinstance(metadata, Mapping):
            candidates.append(metadata.get("session_id"))
    proxy_request = request_kwargs.get("proxy_server_request")
    if isinstance(proxy_request, Mapping) and isinstance(proxy_request.get("headers"), Mapping):
        headers = {str(k).lower(): v for k, v in proxy_request["headers"].items()}
        candidates.append(headers.get(HEADER))
    return next((str(c) for c in candidates if isinstance(c, str) and c), None)


def set_session_id(request_kwargs: dict[str, Any], deployment_session_id: str) -> None:
    """Make the outgoing body carry ``deployment_session_id``: in ``extra_body`` when the request
    uses it (LiteLLM merges it into the body), else as the top-level ``session_id`` kwarg."""
    extra_body = request_kwargs.get("extra_body")
    if isinstance(extra_body, dict) and "session_id" in extra_body:
        # a new dict: the caller's own extra_body is never modified
        request_kwargs["extra_body"] = {**extra_body, "session_id": deployment_session_id}
        request_kwargs.pop("session_id", None)
        return
    request_kwargs["session_id"] = deployment_session_id
