"""Request and response models of the admin API (OpenAPI document).

Every admin body is a closed pydantic model that the route declares as its body type, so FastAPI
validates it before the handler runs (a bad body is a 400 in OpenAI error JSON, never a 500) and
the OpenAPI document shows the real fields. Response models are documented with ``responses=``
(not ``response_model=``): the documentation describes the reply, it does not filter it.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from deployments.common.schema_base import ClosedModel
from control_plane.admin_events import AdminEvent  # noqa: F401  (the reply of GET /admin/events/{id})


SessionIdField = Field(min_length=1, max_length=256, description="a session id (``sess_...``)")
ReplicaField = Field(min_length=1, max_length=256, description="a replica id (``replica-0``, ...)")


class SessionRef(ClosedModel):
    session_id: str = SessionIdField


class ClearRequest(ClosedModel):
    """Exactly one target: a session, a replica's sessions, or everything (``all: true``)."""

    session_id: str | None = Field(default=None, min_length=1, max_length=256)
    replica: str | None = Field(default=None, min_length=1, max_length=256)
    all: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "ClearRequest":
        given = [n for n, v in (("session_id", self.session_id), ("replica", self.replica), ("all", self.all)) if v]
        if len(given) != 1:
            raise ValueError(f"clear needs exactly one of session_id, replica or all: true (got {given or 'none'})")
        return self


class DrainRequest(ClosedModel):
    replica: str = ReplicaField


class LookupRequest(ClosedModel):
    """Where a session lives (``session_id``) or which sessions hold a token prefix (``token_ids``,
    at most ``limits.max_lookup_token_ids``) - exactly one of the two."""

    session_id: str | None = Field(default=None, min_length=1, max_length=256)
    token_ids: list[int] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> "LookupRequest":
        if (self.session_id is None) == (self.token_ids is None):
            raise ValueError("lookup needs exactly one of session_id or token_ids")
        return self


class EventRef(BaseModel):
    """A started admin action; poll ``GET /admin/events/{event_id}``."""

    event_id: str


class LookupReply(BaseModel):
    """``session_id`` lookups answer replica/state/copies; ``token_ids`` lookups answer prefix_holders."""

    session_id: str | None = None
    replica: str | None = None
    state: str | None = None
    copies: list[dict[str, Any]] | None = None
    prefix_holders: list[dict[str, Any]] | None = None


class AdminMoveRequest(ClosedModel):
    session_id: str
    target_replica: str | None = None
    method: Literal["transfer", "rebuild"] = "transfer"


class AdminCompressRequest(ClosedModel):
    session_id: str
    compression_ratio: float | None = Field(default=None, gt=0, lt=1)
    codec: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "AdminCompressRequest":
        if (self.compression_ratio is None) == (self.codec is None):
            raise ValueError("give exactly one of compression_ratio (re-prune) or codec (quantize)")
        return self
