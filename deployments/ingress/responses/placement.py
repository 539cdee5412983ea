"""Where a Responses turn runs, and where it goes when that replica's model actors are gone.

A turn that continues a stored cache (``previous_response_id``, ``session_id``) runs on the replica
that holds it (waiting up to ``responses.ready_wait_s`` while the control plane rebuilds or moves
it); a first turn goes where the control plane places its stored record (``store: true``) or
where the plain router sends the prompt (``store: false``). Failover before the first token:
deployments/ingress/failover.py. A mixin of ``ResponseRoutes``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from control_plane.errors import SessionNotReady
from deployments.common.prefix_scope import prefix_scope
from deployments.ingress.failover import ACTORS_GONE, CACHE_GONE, first_items, start_with_failover
from deployments.ingress.responses.conversation import Turn
from deployments.ingress.responses.items import ParsedInput
from deployments.ingress.responses.schema import ResponseCreateRequest
from deployments.ingress.responses.state import Parent, chain_layout


class TurnPlacement:
    """Needs ``self.control``, ``self.replicas``, ``self.config``, ``self.router``,
    ``self.conversations`` and ``self._first`` / ``self._plain_elsewhere`` (ChatRoutes) from the Ingress."""

    control: Any
    replicas: dict[str, Any]

    async def _place(self, req: ResponseCreateRequest, owner: str, rid: str, parent: Parent | None, turn: Turn,
                     parsed: ParsedInput) -> tuple[str, dict | None]:
        """The replica to run the turn on, and the store plan (None for ``store: false``)."""
        if parent is not None:
            where = await self._locate(parent.id, owner)
            name = where["replica"]
        elif not req.stores:
            scope = prefix_scope(owner, None, self.config.plain.share_prefixes_across_owners)
            name = self.router.pick(turn.conversation, None, scope).replica_id
        if not req.stores:
            return name, None
        layout = chain_layout(parent, self.config.responses.compress_after_tokens)
        press = parent.record["press"] if parent is not None else self.config.default_press.model_dump(mode="json")
        opened = await self.control.open_response.remote(
            response_id=rid, owner=owner, model=req.model, token_ids=turn.input_ids,
            uncompressed_from=0, press=press, ttl_s=self.config.responses.ttl_s,
            replica=name if parent is not None else None)
        store = {"key": rid, "closing_ids": self.conversations.closing_ids, "press": press,
                 "uncompressed_from": layout.uncompressed_from, "recompress": layout.recompress}
        return opened["replica"], store

    async def _locate(self, parent_id: str, owner: str) -> dict:
        """Where the parent's cache is; waits (up to ``responses.ready_wait_s``) while it is being
        rebuilt or moved, then 409."""
        deadline = time.monotonic() + self.config.responses.ready_wait_s
        while True:
            try:
                return await self.control.locate.remote(parent_id, owner)
            except SessionNotReady:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def _start_turn(self, owner: str, rid: str, parent: Parent | None, turn: Turn, sampling: dict,
                          store: dict | None, name: str) -> tuple[str, tuple[Any, dict]]:
        """``(replica, (stream, first item))`` of the turn, started on ``name``. If that replica lost its
        model actors (or the parent's cache) before the first token, the turn starts once more
        (deployments/ingress/failover.py): after the parent's cache, which the control plane
        recovers first (waited for up to ``responses.ready_wait_s``), else on another replica; a
        stored turn's LOADING record moves with it (``relocate_load``)."""
        async def start(at: str, moved: bool) -> tuple[Any, dict]:
            stream = self.replicas[at].options(stream=True).respond.remote(
                parent.id if parent else None, turn.input_ids, sampling, store, moved)
            return stream, (await first_items([stream], self._first))[0]

        async def move(at: str, exc: BaseException) -> str:
            if parent is None and store is None:
                scope = prefix_scope(owner, None, self.config.plain.share_prefixes_across_owners)
                return self._plain_elsewhere(at, exc, lambda tried: self.router.pick(turn.conversation, None, scope,
                                                                                     exclude=tried))
            self.router.lost(at)
            if parent is None:
                return await self.control.relocate_load.remote(rid, at)
            await self.control.report_missing.remote(parent.id, owner, at)
            to = (await self._locate(parent.id, owner))["replica"]
            if store is not None:
                await self.control.relocate_load.remote(rid, at, to)
            return to

        return await start_with_failover(name, start, move, CACHE_GONE if parent is not None else ACTORS_GONE)
