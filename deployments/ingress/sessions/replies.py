"""Sessions API replies: the session view (``GET /v1/sessions/{id}`` and every route that returns
a session) built from the control plane's record, and its reply models - one model per object,
used both to build and to document.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any

from pydantic import Field

from deployments.common.schema_base import OpenModel
from deployments.ingress.sessions.press_outcome import press_outcome


class Session(OpenModel):
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
    expire_time: float | None = Field(default=None, description="Unix seconds it expires if unused (last_used + "
                                      "ttl_s); null when pinned or without TTL")
    failure: str | None = None
    compression: dict[str, Any] | None = Field(default=None, description="what the press did (press_outcome.py)")
    press_stats: dict[str, Any] | None = Field(
        default=None, description="what the press reported about this load (moe_router: requested / applied "
        "ratio, pool pressure, per layer each KV head's experts, weights and tokens kept); null when the "
        "press reports nothing")
    timings: dict[str, float] | None = Field(default=None, description="load timings, in the reply of a load")


class SessionList(OpenModel):
    """One page of ``GET /v1/sessions`` (OpenAI list shape); pass ``last_id`` as ``after`` for the next."""

    object: str = "list"
    data: list[Session]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class SessionDeleted(OpenModel):
    id: str
    object: str = "session"
    deleted: bool


def session_view(record: dict[str, Any]) -> dict[str, Any]:
    """The ``Session`` object of a control-plane session record (``SessionRecord.as_dict()``)."""
    state = record["state"].lower() if isinstance(record["state"], str) else record["state"]
    expire_time = None if record["ttl_s"] is None or record["pinned"] else record["last_used_s"] + record["ttl_s"]
    view = Session(id=record["id"], object="session", model=record["model"], state=state,
                   replica=record.get("replica"), press=record["press"], tokens_read=record["read_tokens"],
                   tokens_kept=record["kept_tokens"], bytes_stored=record["stored_bytes"], codec=record["codec"],
                   pinned=record["pinned"], created=record["created_s"], last_used=record["last_used_s"],
                   ttl_s=record["ttl_s"], expire_time=expire_time, failure=record.get("failure"),
                   compression=press_outcome(record["press"], record["read_tokens"], record["kept_tokens"]),
                   press_stats=record.get("press_stats"))
    return view.model_dump(exclude_unset=True)
