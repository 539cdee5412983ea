"""Reply models of the OpenAI and sessions routes, for the OpenAPI document (``GET /openapi.json``).

They describe what deployments/openai_format.py and ``Ingress._session_view`` build (fields as in
OpenAI's ``ChatCompletion`` object); routes list them with ``responses=``, which documents a reply
without filtering or re-validating it. Open models (extra fields allowed): a reply may carry more.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: str
    content: str | None = None


class Choice(_Open):
    index: int
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class PromptTokensDetails(_Open):
    cached_tokens: int = 0


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletion(_Open):
    """``stream: false``. With ``stream: true`` the reply is ``text/event-stream`` of
    ``chat.completion.chunk`` objects ending with ``data: [DONE]``."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    session_id: str | None = None


class Session(_Open):
    id: str
    object: str = "session"
    model: str
    state: str
    replica: str | None = None
    press: dict[str, Any]
    tokens_read: int | None = None
    tokens_kept: float | None = None
    bytes_stored: int | None = None
    codec: str | None = None
    pinned: bool = False
    created: float | None = None
    last_used: float | None = None
    ttl_s: float | None = None
    failure: str | None = None
    timings: dict[str, float] | None = None
    press_stats: dict[str, Any] | None = Field(
        default=None, description="what the press reported about this load (moe_router: requested / applied "
        "ratio, pool pressure, per layer each KV head's experts, weights and tokens kept); in the load reply")
    expire_time: float | None = Field(default=None, description="Unix seconds it expires if unused (last_used + "
                                      "ttl_s); null when pinned or without TTL")


class SessionList(_Open):
    """One page of ``GET /v1/sessions`` (OpenAI list shape); pass ``last_id`` as ``after`` for the next."""

    object: str = "list"
    data: list[Session]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class SessionDeleted(_Open):
    id: str
    object: str = "session"
    deleted: bool


class Model(_Open):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    max_model_len: int | None = None


class ModelList(_Open):
    object: str = "list"
    data: list[Model]


class PressList(_Open):
    object: str = "list"
    data: list[dict[str, Any]]
    default: dict[str, Any]


class Health(_Open):
    status: str
    model: str
    replicas: list[str]
