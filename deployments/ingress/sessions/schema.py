"""Request bodies of the sessions API (``POST`` and ``PATCH /v1/sessions``; closed: unknown fields are a 400).

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import datetime as dt
from typing import Any

from pydantic import Field, field_validator, model_validator

from deployments.common.schema_base import ClosedModel, StrictModel
from deployments.ingress.chat.messages import check_messages
from deployments.ingress.errors import APIError
from kvpool.press_spec import PressSpec


class SessionCreateRequest(StrictModel):
    """Load a context once. Exactly one of ``context`` (text), ``documents`` (joined with blank
    lines) or ``messages`` (a chat history). ``press`` defaults to the configured press."""

    model: str
    context: str | None = None
    documents: list[str] | None = None
    messages: list[dict[str, Any]] | None = None
    press: PressSpec | None = None
    ttl_s: float | None = Field(default=None, gt=0)
    pinned: bool = False
    wait: bool = Field(default=True, description="false: return 202 at once and poll GET /v1/sessions/{id}")
    stream: bool = Field(default=False, description="true: stream progress events as server-sent events")

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        return value if value is None else check_messages(value, "messages")

    @model_validator(mode="after")
    def _one_context(self) -> "SessionCreateRequest":
        given = [n for n in ("context", "documents", "messages") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of context, documents or messages (got {given or 'none'})")
        if self.context is not None and not self.context.strip():
            raise ValueError("context must not be empty")
        if self.documents is not None and not any(d.strip() for d in self.documents):
            raise ValueError("documents must not be empty")
        if self.messages is not None and not self.messages:
            raise ValueError("messages must not be empty")
        return self

    def context_value(self) -> str | list[dict[str, Any]]:
        if self.messages is not None:
            return self.messages
        if self.documents is not None:
            return "\n\n".join(self.documents)
        return self.context or ""


class SessionUpdateRequest(ClosedModel):
    """``PATCH /v1/sessions/{id}`` body: at least one field; ``ttl_s`` and ``expire_time`` exclude each other."""

    ttl_s: float | None = Field(default=None, gt=0)
    expire_time: float | None = Field(default=None, description="Unix seconds or an RFC 3339 timestamp")
    pinned: bool | None = None

    @field_validator("expire_time", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError("expire_time must be Unix seconds or an RFC 3339 timestamp "
                                 "(e.g. 2026-01-31T12:00:00Z)") from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()
        return value

    @model_validator(mode="after")
    def _something(self) -> "SessionUpdateRequest":
        if not self.model_fields_set:
            raise ValueError("give at least one of ttl_s, expire_time, pinned")
        if {"ttl_s", "expire_time"} <= self.model_fields_set:
            raise ValueError("give ttl_s or expire_time, not both")
        if "pinned" in self.model_fields_set and self.pinned is None:
            raise ValueError("pinned must be true or false")
        if "expire_time" in self.model_fields_set and self.expire_time is None:
            raise ValueError("expire_time must be a time; to never expire send ttl_s: null")
        return self

    def changes(self, last_used_s: float, now_s: float) -> dict:
        """The record changes: ``ttl_s`` (from ``expire_time`` relative to ``last_used_s``) and/or ``pinned``."""
        out: dict[str, Any] = {}
        if "ttl_s" in self.model_fields_set:
            out["ttl_s"] = self.ttl_s
        if self.expire_time is not None:
            if self.expire_time <= now_s:
                raise APIError(400, f"expire_time {self.expire_time:.0f} is not in the future (now {now_s:.0f})",
                               "invalid_request")
            out["ttl_s"] = self.expire_time - last_used_s
        if self.pinned is not None:
            out["pinned"] = self.pinned
        return out
