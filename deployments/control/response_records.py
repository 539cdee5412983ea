"""The control shell's records of stored responses (the Responses API, deployments/ingress/responses/).

Each stored response is a session whose context is its conversation so far (token ids, the
newest turn kept whole from ``uncompressed_from`` on): opened LOADING where the cache it extends
lives, then READY with the whole chain once the replica stored it. A mixin of ``ControlShell``
(needs ``self.cp`` and ``self.ready``); every method is a remote call of the control deployment.
"""

from __future__ import annotations

from typing import Any

from control_plane.context import SessionContext
from control_plane.ids import ReplicaId, SessionId
from deployments.control.tiers import loaded_fields
from kvpool.press_spec import PressSpec


class ResponseRecords:
    """Needs ``self.cp`` (the ControlPlane) and ``self.ready`` from ControlShell."""

    cp: Any

    async def open_response(self, *, response_id: str, owner: str, model: str, token_ids: list[int],
                            uncompressed_from: int, press: dict, ttl_s: float | None,
                            replica: str | None) -> dict:
        """A LOADING record for a response about to be generated (its prompt as the context for
        now), on ``replica`` (where the cache it extends lives) or placed by the policy."""
        await self.ready()
        ctx = SessionContext(token_ids=tuple(token_ids), uncompressed_from=min(uncompressed_from, len(token_ids)))
        record, decision = self.cp.open_session(model=model, context=ctx, press=PressSpec.model_validate(press),
                                                owner=owner, ttl_s=ttl_s, session_id=SessionId(response_id),
                                                replica=ReplicaId(replica) if replica else None)
        return {"session": record.model_dump(mode="json"), "replica": decision.replica_id}

    async def mark_response_stored(self, response_id: str, stored: dict, uncompressed_from: int,
                                   response: dict) -> dict:
        """The response's conversation cache is in the pool: READY with its whole token ids."""
        ctx = SessionContext(token_ids=tuple(stored["token_ids"]), uncompressed_from=uncompressed_from)
        record = self.cp.mark_loaded(SessionId(response_id), **loaded_fields(stored), context=ctx,
                                     response=response)
        return {"id": record.id, "state": record.state.value}
