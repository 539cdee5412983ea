"""Which deployment a Responses API chain lives on.

A stored response's conversation cache lives in the KV pool of the deployment that answered it,
so a request continuing it (``previous_response_id``) must go there. LiteLLM encodes the
deployment's ``model_info.id`` into every response id it returns through a Router
(``litellm.responses.utils.ResponsesAPIRequestUtils``: ``resp_<base64 of litellm:...;model_id:...;
response_id:...>``) and decodes the original id before calling the deployment; this module reads
that id back. A response id LiteLLM did not encode (a client that called the deployment directly)
names no deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm.responses.utils import ResponsesAPIRequestUtils


def response_home(request_kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(previous_response_id, deployment id)`` when the request continues a response this router
    returned, else None."""
    previous = request_kwargs.get("previous_response_id")
    if not isinstance(previous, str) or not previous:
        return None
    home = ResponsesAPIRequestUtils.get_model_id_from_response_id(previous)
    return (previous, str(home)) if home else None
