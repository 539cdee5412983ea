"""The Responses API's side of a Replica: conversation chains kept as stored caches.

A stored response's cache is its conversation so far: the parent response's (or session's)
cache + this turn's input + the answer (deployments/ingress/responses/ decides what that is).
``respond`` streams one turn and stores the conversation behind it; ``_load_chain`` rebuilds a
chain from its token ids (a recovery, or a re-compression past the threshold) with the layout it
was stored with: the first ``uncompressed_from`` tokens under the press, the rest whole.

A mixin of ``Replica`` (deployments/serving/replica.py): needs ``self.prefill_actor``,
``self.decode_actor`` and ``self._relay``.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from kvpool.press_spec import NO_PRESS


class ResponseChains:
    prefill_actor: Any
    decode_actor: Any

    def _prefill_method(self, background: bool) -> Any:
        """The prefill actor's method for a prefill: ``prefill_background`` (yields to live prefills)
        for a recovery no client waits for, else ``prefill``."""
        return self.prefill_actor.prefill_background if background else self.prefill_actor.prefill

    async def _load_chain(self, session_id: str, token_ids: list[int], uncompressed_from: int, press: dict,
                          pinned: bool = False, background: bool = False) -> dict:
        """Store ``token_ids[:uncompressed_from]`` prefilled under ``press`` + the rest appended whole
        (``background``: a recovery no client waits for, whose prefill yields to live ones)."""
        prefill = self._prefill_method(background)
        if uncompressed_from <= 0:
            base = prefill.remote(token_ids, NO_PRESS.model_dump(mode="json"))
            return await self.decode_actor.store_extended.remote(session_id, base, [], pinned)
        base = prefill.remote(token_ids[:uncompressed_from], press)
        return await self.decode_actor.store_extended.remote(session_id, base, token_ids[uncompressed_from:], pinned)

    async def respond(self, parent: str | None, input_ids: list[int], sampling: dict,
                      store: dict | None = None, wait_for_actors: bool = False) -> AsyncIterator[dict]:
        """One turn of a conversation (the Responses API, deployments/ingress/responses/).

        ``parent``: the session/response id whose stored cache this turn continues (None: a first
        turn, whose prompt is read uncompressed); ``input_ids``: the turn's new tokens (the whole
        prompt on a first turn). Streams the decode actor's token dicts. With ``store``
        (``{"key", "closing_ids", "uncompressed_from", "recompress", "press", "pinned"}``), the
        conversation so far - parent cache + ``input_ids`` + the output (its end-of-sequence id
        dropped) + ``closing_ids`` (the chat template's end of an assistant turn) - is stored as
        ``key``'s cache, and one last dict ``{"stored": {...store() reply, "token_ids"}}`` follows.
        With ``store["answer_later"]`` the output and ``closing_ids`` are left out: the caller
        appends the answer it renders (``append_answer``; a tool-calling turn's output items).
        With ``recompress`` the tokens before ``uncompressed_from`` are re-prefilled under ``press``
        and the rest appended whole; otherwise the new tokens are appended to the parent's cache.
        ``wait_for_actors``: wait for a restart of the actors the turn uses instead of ActorsRestarting.
        """
        fed = input_ids[-1:] if parent is None else list(input_ids)
        base: Any = parent

        async def open_stream() -> Any:
            nonlocal base
            generate = self.decode_actor.generate.options(num_returns="streaming")
            if parent is None:
                await self.decode_actor.ready.remote()  # dead: fail (and move) now, not after a wasted prefill
                base = self.prefill_actor.prefill.remote(input_ids[:-1], NO_PRESS.model_dump(mode="json"))
                return generate.remote(None, fed, sampling, base)
            return generate.remote(parent, fed, sampling)

        async def stored(output: list[int]) -> dict:
            return {"stored": await self._store_turn(base, fed, output, store)}

        prefills = parent is None or (store is not None and store.get("recompress"))
        async for item in self._relay(open_stream, stored if store is not None else None,
                                      ("prefill", "decode") if prefills else ("decode",), wait_for_actors):
            yield item

    async def _store_turn(self, base: Any, fed: list[int], output: list[int], store: dict) -> dict:
        eos = set(await self.decode_actor.eos_ids.remote())
        if output and output[-1] in eos:
            output = output[:-1]  # the template's closing tokens carry the end of the turn
        new_ids = list(fed) + ([] if store.get("answer_later") else output + list(store["closing_ids"]))
        if not store.get("recompress"):
            return await self.decode_actor.store_extended.remote(store["key"], base, new_ids, store.get("pinned", False))
        before = (await self.decode_actor.cache_tokens.remote(base) if isinstance(base, str)
                  else list((await base).meta.token_ids))
        return await self._load_chain(store["key"], before + new_ids, store["uncompressed_from"], store["press"],
                                      store.get("pinned", False))

    async def append_answer(self, key: str, answer_ids: list[int], pinned: bool = False) -> dict:
        """Append an answer's tokens to ``key``'s stored cache (a turn stored by ``respond`` with
        ``answer_later``); returns what ``DecodeActor.store_extended`` returns."""
        return await self.decode_actor.store_extended.remote(key, key, list(answer_ids), pinned)
