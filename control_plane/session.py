"""SessionRecord: the durable, immutable description of one session.

Every change makes a new record with ``version`` one higher; the store refuses a write whose
version is not newer than the stored one, so two writers cannot silently overwrite each other.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from control_plane.context import SessionContext
from control_plane.ids import ANONYMOUS_OWNER, NodeId, ReplicaId, SessionId
from control_plane.states import SERVABLE_STATES, SessionState, check_transition
from kvpool.handles import Tier
from kvpool.press_spec import PressSpec


class SessionRecord(BaseModel):
    """One session. Times are seconds on the control plane's clock (``time.time()`` by default).

    - ``owner``: API key id, or ``"anonymous"``.
    - ``press``: the PressSpec as a JSON dict (``press_spec`` parses it back).
    - ``context`` / ``context_hash``: enough to re-prefill; the hash (model + context) drives affinity.
    - ``replica`` / ``tier``: where the answering copy lives (None while no copy is known).
    - ``target_replica``: where a migration or rebuild is heading (None otherwise).
    - ``stored_bytes``: bytes of the answering copy; ``read_tokens`` / ``kept_tokens``: context
      tokens prefilled and kept after the press.
    - ``ttl_s``: idle time-to-live counted from ``last_used_s``; None never expires.
    - ``pinned``: exempt from TTL expiry and from pressure migrations.
    - ``response``: set when the session is a stored Responses API response (its reply object,
      input items and conversation as text; deployments/ingress/responses/state.py); None otherwise.
    - ``press_stats``: what the press reported about the load that made the cache (``get_stats()``
      of presses that have one, e.g. ``moe_router``: per layer each KV head's experts, weights and
      tokens kept); None when the press reports nothing.
    - ``version``: bumped on every change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: SessionId
    owner: str = ANONYMOUS_OWNER
    model: str
    press: dict[str, Any] = Field(default_factory=dict)
    context: SessionContext
    context_hash: str
    state: SessionState = SessionState.LOADING
    replica: ReplicaId | None = None
    node: NodeId | None = None
    tier: Tier | None = None
    target_replica: ReplicaId | None = None
    stored_bytes: int = Field(default=0, ge=0)
    read_tokens: int = Field(default=0, ge=0)
    kept_tokens: int = Field(default=0, ge=0)
    created_s: float
    last_used_s: float
    ttl_s: float | None = Field(default=None, gt=0)
    pinned: bool = False
    codec: str = "none"
    failure: str | None = None
    response: dict[str, Any] | None = None
    press_stats: dict[str, Any] | None = None
    version: int = Field(default=0, ge=0)

    @classmethod
    def new(
        cls,
        session_id: SessionId,
        *,
        model: str,
        context: SessionContext,
        press: PressSpec,
        now_s: float,
        owner: str = ANONYMOUS_OWNER,
        ttl_s: float | None = None,
        pinned: bool = False,
    ) -> "SessionRecord":
        """A LOADING record at version 0 with the context hash computed."""
        return cls(
            id=session_id, owner=owner, model=model, press=press.model_dump(mode="json"), context=context,
            context_hash=context.digest(model), created_s=now_s, last_used_s=now_s, ttl_s=ttl_s, pinned=pinned,
        )

    @property
    def press_spec(self) -> PressSpec:
        return PressSpec.model_validate(self.press)

    @property
    def servable(self) -> bool:
        """True when the owner replica holds a complete copy (READY, SPILLED or MIGRATING)."""
        return self.state in SERVABLE_STATES and self.replica is not None and self.tier is not None

    def expires_at_s(self) -> float | None:
        """When TTL expiry frees this session; None for no TTL or pinned."""
        if self.ttl_s is None or self.pinned:
            return None
        return self.last_used_s + self.ttl_s

    def is_expired(self, now_s: float) -> bool:
        """True when a live, unpinned session has been idle for at least its TTL at ``now_s``."""
        expires = self.expires_at_s()
        return expires is not None and self.state is not SessionState.DELETED and now_s >= expires

    def updated(self, **changes: Any) -> "SessionRecord":
        """A copy with ``changes`` applied (state unchanged) and version + 1.

        Changed fields are validated; the (possibly large) context is passed through as is.
        """
        if "state" in changes and changes["state"] is not self.state:
            raise ValueError("use transition() to change a session's state")
        return self.model_validate({**dict(self), **changes, "version": self.version + 1})

    def transition(self, state: SessionState, **changes: Any) -> "SessionRecord":
        """A copy in ``state`` with ``changes`` applied and version + 1; raises InvalidTransition."""
        check_transition(self.id, self.state, state)
        return self.model_validate({**dict(self), **changes, "state": state, "version": self.version + 1})
