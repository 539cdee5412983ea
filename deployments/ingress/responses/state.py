"""Conversation state of the Responses API: where a turn starts, how its chain is compressed, and
what a stored response keeps.

A stored response is a session (control_plane.SessionRecord, id ``resp_...``): its cache in a
replica's KV pool is the whole conversation through its answer, with the owner, TTL, eviction,
spill, migration and SQLite durability of any session. Its record's context is the chain's token
ids plus ``uncompressed_from`` (the first ``n`` tokens were prefilled under the chain's press,
the rest appended whole), so a lost cache is rebuilt with the layout it had; ``response`` holds
the reply object, the input items and the conversation as text (the next turn's rendering).

Compression (``chain_layout``): a turn appends its new tokens to the previous cache whole. When
the uncompressed history before the newest turn reaches ``compress_after_tokens``, the response
being stored re-prefills everything before its own turn under the press (newest turn kept whole):
so the press reads each stretch of history once, the latest question and answer are never
pruned, and a chain's cache stays about ``press ratio x history + newest turn`` long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Parent:
    """The stored cache a turn continues: a response or a session record (control plane JSON)."""

    record: dict[str, Any]

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def is_response(self) -> bool:
        return self.record.get("response") is not None

    @property
    def tokens(self) -> int:
        """Tokens its cache covers (the turn's cached tokens)."""
        return int(self.record["read_tokens"])

    @property
    def uncompressed_from(self) -> int:
        """Where its whole (never pressed) tail starts; a session's whole context went through its press."""
        if self.is_response:
            return int(self.record["context"].get("uncompressed_from") or 0)
        return self.tokens

    @property
    def conversation(self) -> list[dict[str, Any]]:
        return list(self.record["response"]["conversation"]) if self.is_response else []

    @property
    def instructions(self) -> str | None:
        return self.record["response"].get("instructions") if self.is_response else None

    @property
    def tools_block(self) -> str:
        """The tools text its cache holds ("" for none; deployments/ingress/tools/render.py)."""
        return self.record["response"].get("tools_block", "") if self.is_response else ""


@dataclass(frozen=True)
class ChainLayout:
    """How the new response's cache is built: ``recompress`` (re-prefill the first
    ``uncompressed_from`` tokens under the press) or not (append to the parent's cache)."""

    uncompressed_from: int
    recompress: bool


def chain_layout(parent: Parent | None, compress_after_tokens: int) -> ChainLayout:
    """The layout of a response continuing ``parent`` (None: a first turn, kept whole)."""
    if parent is None:
        return ChainLayout(0, False)
    if parent.tokens - parent.uncompressed_from >= compress_after_tokens:
        return ChainLayout(parent.tokens, True)
    return ChainLayout(parent.uncompressed_from, False)


def stored_response(response: dict[str, Any], input_items: list[dict[str, Any]],
                    conversation: list[dict[str, Any]], instructions: str | None, tools_block: str = "") -> dict[str, Any]:
    """What a response's record keeps besides its cache (``SessionRecord.response``)."""
    return {"object": response, "input_items": input_items, "conversation": conversation,
            "instructions": instructions, "tools_block": tools_block}


class Finisher:
    """What happens to a finished response: with a store plan, its record gets the reply object,
    input items and conversation (READY, ``mark_response_stored``); a failed one is marked failed
    (never left loading). Without a store plan, nothing. ``control``: the control shell handle;
    ``replica``: the handle of the replica that ran the turn and ``encode`` (text -> token ids), for
    a plan with ``answer_later`` (a tool-calling turn: the replica stored the conversation through
    the turn's input, and the answer is appended here as its output items' rendering)."""

    def __init__(self, control: Any, rid: str, input_items: list[dict[str, Any]], conversation: list[dict[str, Any]],
                 instructions: str | None, store: dict | None, tools_block: str = "", tools: Any = None,
                 replica: Any = None, encode: Any = None):
        self.control, self.rid, self.input_items, self.conversation = control, rid, input_items, conversation
        self.instructions, self.store, self.tools_block, self.tools = instructions, store, tools_block, tools
        self.replica, self.encode = replica, encode
        self.done = False

    async def record(self, response: dict[str, Any], stored: dict | None, answer_text: str) -> None:
        """``answer_text``: the assistant turn the stored cache holds - as generated, or, with
        ``answer_later``, the rendering of its output items (function_tools.answer_turn) appended now,
        so a chain reads the same history as a client re-sending the items."""
        if self.store is None:
            return
        if stored is None:
            raise RuntimeError("the replica did not store the response's cache")
        if self.store.get("answer_later"):
            ids = [*self.encode(answer_text), *self.store["closing_ids"]]
            stored = await self.replica.append_answer.remote(self.rid, ids, self.store.get("pinned", False))
        conversation = [*self.conversation, {"role": "assistant", "content": answer_text}]
        kept = stored_response(response, self.input_items, conversation, self.instructions, self.tools_block)
        await self.control.mark_response_stored.remote(self.rid, stored, self.store["uncompressed_from"], kept)
        self.done = True

    async def failed(self, reason: str) -> None:
        if self.store is not None and not self.done:
            self.done = True
            await self.control.mark_load_failed.remote(self.rid, reason)
