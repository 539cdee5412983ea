"""DecodeActor: holds a replica's KVPool and answers questions from the caches in it.

An async Ray actor. Generation is a streaming actor method (``num_returns="streaming"``) that
yields one dict per token. Generations are continuously batched: one ``DecodeLoop`` thread per
actor decodes every running generation in one forward per step (deployments/engine/decode/);
requests whose cache runs a decoding-time press (phase ``decoding``/``prefill_decoding``), or all
of them when ``BatchConfig.enabled`` is False, decode alone through ``KVEngine.generate`` (one
request per forward, steps interleaved token by token). Cancelling the stream (client
disconnect) takes the generation out of the batch at the next step.

Pool events are buffered and drained by the replica, which forwards them to the control plane.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import deque
from typing import Any, AsyncIterator

from deployments.config import PlainRequestConfig
from deployments.engine.decode import BatchConfig, DecodeLoop, unsupported_reason
from deployments.engine.extend import extend_cache
from deployments.engine.model_loader import ModelConfig
from deployments.engine.presses import install_press_policy
from deployments.engine.presses.press_stats import PressStatsTotals
from deployments.serving.prefix_cache import PrefixCache
from deployments.serving.session_table import SessionTable
from deployments.engine.sampling import SamplingParams
from deployments.engine.token_bytes import TokenBytes
from deployments.serving.model_process import start_engine
from kvpool import codecs
from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig
from kvpool.durable_store import DurableStore, PersistedCacheError
from kvpool.errors import KVFleetError, UnknownHandleError
from deployments.common.replica_errors import MissingCache
from kvpool.handles import KVHandle
from kvpool.packing import PackedKV, pack, unpack
from kvpool.pool import KVPool
from kvpool.press_spec import PressSpec
from kvpool.recompress import recompressor_for
from transfer import TransferEndpoint, transfer_actor

log = logging.getLogger(__name__)


@transfer_actor
class DecodeActor(TransferEndpoint):
    """Also a transfer endpoint (transfer.TransferEndpoint): migrations move its caches directly
    to another replica's DecodeActor with the configured backend, keyed by session id."""

    def __init__(self, model: dict, torch_threads: int, pool: dict, plain: dict | None = None,
                 batching: dict | None = None, presses: dict | None = None, durable: dict | None = None):
        install_press_policy(presses)  # AppConfig.presses (the plain-request prefix cache prefills too)
        self.engine = start_engine(ModelConfig.model_validate(model), torch_threads)
        batch = BatchConfig.model_validate(batching or {})
        unsupported = unsupported_reason(self.engine.model.config) if batch.enabled else None
        if unsupported:
            log.warning("continuous batching is off for this model: %s; generations decode one per forward",
                        unsupported)
        self.decode_loop = DecodeLoop(self.engine, batch) if batch.enabled and not unsupported else None
        self.batching_off_reason = unsupported or (None if batch.enabled else "batching.enabled is false")
        self.token_bytes = TokenBytes(self.engine.tokenizer)
        self._init_storage(KVPoolConfig.model_validate(pool), PlainRequestConfig.model_validate(plain or {}), durable,
                           dtype=self.engine.dtype)
        self.active_streams = 0
        self.tokens_generated = 0

    def _init_storage(self, pool: KVPoolConfig, plain: PlainRequestConfig, durable: dict | None = None,
                      dtype: str | None = None) -> None:
        """The pool, its session table, the prefix cache and the durable store (``{"dir",
        "budget_bytes"}``, None: off) - split out so that tests can drive the storage paths of a
        real DecodeActor without loading a model. ``dtype``: the model's; the pool converts caches
        of another dtype (a migration from a replica that runs another one)."""
        self.durable = DurableStore(durable["dir"], durable["budget_bytes"]) if durable else None
        self.press_totals = PressStatsTotals()  # loads whose press reports statistics (moe_router)
        self.pool = KVPool(pool, recompressor=recompressor_for(pool.recompress.press), dtype=dtype,
                           durable=self.durable)  # spills reuse the durable files
        self.plain = plain
        self.prefixes = PrefixCache(self.pool, self.engine, self.plain)
        self.sessions = SessionTable(self.pool)  # the one owner of session -> pool entry (thread-safe)
        self.events: deque[dict] = deque(maxlen=100_000)  # appended by any thread, drained by popleft
        self.pool.subscribe(self._on_event)

    def ready(self) -> bool:
        return True

    def _on_event(self, event: Any) -> None:
        data = event.to_json()
        if PrefixCache.owns(data["session_id"]):
            return  # prefix-cache entries are this actor's business, not the control plane's
        self.events.append(data)
        if data["kind"] in ("evicted", "freed"):
            self.sessions.forget(data["session_id"], event.handle)

    # ---- storage ----------------------------------------------------------------------------
    def store(self, session_id: str, ckv: CompressedKV, pinned: bool = False, owner: str | None = None,
              press: dict | None = None) -> dict:
        """Put a session's cache in the pool (replacing an older one) and schedule its durable copy
        (recording ``owner`` and ``press`` when known); returns what was stored."""
        handle, info = self.sessions.store(session_id, ckv, pinned)
        self.press_totals.add(ckv.meta.press_stats)
        self._persist(session_id, ckv, owner, press)
        return self._stored(ckv, handle, info)

    def _persist(self, session_id: str, ckv: CompressedKV, owner: str | None, press: dict | None) -> None:
        if self.durable is not None:
            spec = PressSpec.model_validate(press).model_dump(mode="json") if press is not None else None
            self.durable.persist(session_id, ckv, owner=owner, press=spec)

    def restore(self, session_id: str, expect: dict, pinned: bool = False) -> dict:
        """Read ``session_id``'s persisted cache back into the pool, checking it against ``expect``
        (``owner``, ``press``) and this engine (model id, dtype). Raises PersistedCacheError
        (``reason`` missing / corrupt / mismatch), or CapacityError if the pool has no room."""
        if self.durable is None:
            raise PersistedCacheError("missing", "durable caches are disabled on this replica")
        dtype = str(self.engine.model.dtype).removeprefix("torch.")
        spec = PressSpec.model_validate(expect["press"]).model_dump(mode="json") if expect.get("press") else None
        ckv = self.durable.read(session_id, owner=expect.get("owner"), press=spec,
                                model_id=self.engine.model_name, dtype=dtype)
        handle, info = self.sessions.store(session_id, ckv, pinned)
        return self._stored(ckv, handle, info) | {"source": "persisted"}

    @staticmethod
    def _stored(ckv: CompressedKV, handle: KVHandle, info: Any) -> dict:
        return {"handle": handle.id, "stored_bytes": info.nbytes, "tier": info.tier.value,
                "read_tokens": ckv.meta.original_tokens, "kept_tokens": round(ckv.meta.kept_tokens),
                "codec": info.codec, "press_stats": ckv.meta.press_stats}

    async def store_extended(self, session_id: str, base: CompressedKV | str, new_ids: list[int],
                             pinned: bool = False) -> dict:
        """Store ``base`` (a cache, or the id of a session this pool holds) followed by ``new_ids``
        as ``session_id``'s cache (deployments/engine/extend.py). Returns what ``store`` returns plus
        ``token_ids`` (every token the new cache covers)."""
        ckv = self._cache(base) if isinstance(base, str) else base
        # off the event loop: the forward takes the engine's lock between other requests' decode steps
        extended = await asyncio.to_thread(extend_cache, self.engine, ckv, list(new_ids)) if new_ids else ckv
        stored = self.store(session_id, extended, pinned)
        stored["token_ids"] = list(extended.meta.token_ids)
        return stored

    def cache_tokens(self, session_id: str) -> list[int]:
        """The token ids a stored session's cache covers (``meta.token_ids``)."""
        return list(self._cache(session_id, decoded=False).meta.token_ids)

    def eos_ids(self) -> list[int]:
        return sorted(self.engine.eos_ids)

    def export(self, session_id: str) -> PackedKV:
        """Pack a session's cache for a transfer (the stored entry stays until ``free``)."""
        return pack(self._cache(session_id, decoded=False))

    def free(self, session_id: str) -> int:
        """Free the session's pool entry and delete its durable copy."""
        if self.durable is not None:
            self.durable.delete(session_id)
        return self.sessions.free(session_id)

    def persisted(self) -> dict[str, dict]:
        """The durable copies on this node: ``{session_id: {"nbytes", "owner", "press", "model_id", "dtype"}}``."""
        return self.durable.listing() if self.durable is not None else {}

    def drop_persisted(self, session_ids: list[str]) -> int:
        """Delete the durable copies of ``session_ids`` (sessions the control plane no longer knows)."""
        if self.durable is None:
            return 0
        return sum(self.durable.delete(s) for s in session_ids)

    def holds(self) -> dict[str, dict]:
        """Every session this pool holds: ``{session_id: {"handle", "tier", "nbytes"}}``."""
        out = {}
        for session, handle in self.sessions.snapshot().items():
            try:
                info = self.pool.info(handle)
            except UnknownHandleError:
                continue  # evicted since the snapshot
            out[session] = {"handle": handle.id, "tier": info.tier.value, "nbytes": info.nbytes}
        return out

    def _cache(self, session_id: str, decoded: bool = True) -> CompressedKV:
        handle = self.sessions.get(session_id)
        try:
            if handle is not None:
                return self.pool.get(handle, decoded=decoded)
        except UnknownHandleError:
            pass  # evicted or replaced between the lookup and the read
        raise MissingCache(f"session {session_id!r} is not loaded on this replica right now "
                           "(being rebuilt or moved); retry shortly")

    # ---- transfer hooks (run on the endpoint's transfer threads) ------------------------------
    def transfer_export(self, key: str) -> PackedKV:
        return self.export(key)

    def transfer_import(self, key: str, packed: PackedKV) -> None:
        self.store(key, unpack(packed))  # owner and press unknown here: the durable copy records None

    # ---- admin ------------------------------------------------------------------------------
    def set_pinned(self, session_id: str, pinned: bool) -> None:
        handle = self._handle(session_id)
        (self.pool.pin if pinned else self.pool.unpin)(handle)

    def quantize(self, session_id: str, codec: str) -> dict:
        info = self.pool.quantize(self._handle(session_id), codec)
        self._repersist(session_id)
        return {"stored_bytes": info.nbytes, "codec": codec}

    def dequantize(self, session_id: str) -> dict:
        info = self.pool.dequantize(self._handle(session_id))
        self._repersist(session_id)
        return {"stored_bytes": info.nbytes, "codec": "none"}

    def recompress(self, session_id: str, compression_ratio: float) -> dict:
        info = self.pool.recompress(self._handle(session_id), compression_ratio)
        self._repersist(session_id)
        return {"stored_bytes": info.nbytes}

    def _repersist(self, session_id: str) -> None:
        """The cache changed in place: its durable copy follows (same owner and press as recorded)."""
        if self.durable is not None:
            recorded = self.durable.listing().get(session_id, {})
            self.durable.persist(session_id, self.pool.get(self._handle(session_id), decoded=False),
                                 owner=recorded.get("owner"), press=recorded.get("press"))

    def _handle(self, session_id: str) -> KVHandle:
        handle = self.sessions.get(session_id)
        if handle is None:
            raise MissingCache(f"no stored cache for session {session_id!r} on this replica")
        return handle

    def drain_events(self) -> list[dict]:
        out = []  # popleft, not list()+clear(): an event appended in between would be lost
        while True:
            try:
                out.append(self.events.popleft())
            except IndexError:
                return out

    def stats(self) -> dict:
        snapshot = self.pool.stats_snapshot()
        snapshot["active_streams"] = self.active_streams
        snapshot["tokens_generated"] = self.tokens_generated
        snapshot["session_count"] = len(self.sessions)
        snapshot["press_stats"] = self.press_totals.snapshot()
        snapshot["durable"] = self.durable.stats() if self.durable is not None else {"enabled": False}
        snapshot["pid"] = os.getpid()  # for operators (and the SIGKILL e2e test)
        snapshot["prefix_cache"] = self.prefixes.stats()
        snapshot["batch"] = (self.decode_loop.snapshot() if self.decode_loop is not None
                             else {"enabled": False, "reason": self.batching_off_reason})
        return snapshot

    def _step_json(self, step: Any, logprobs: bool, context_tokens: int = 0, cached_tokens: int = 0) -> dict:
        token = step.token
        data = {"text": step.text, "finish_reason": step.finish_reason,
                "token_id": token.token_id if token else None,
                "prompt_tokens": context_tokens + step.prompt_tokens, "cached_tokens": cached_tokens,
                "completion_tokens": step.completion_tokens}
        if logprobs and token is not None:
            entry = self.token_bytes.logprob_entry  # the token's own bytes, not a lossy decode (issue 14)
            data["logprob"] = {**entry(token.token_id, token.logprob),
                               "top_logprobs": [entry(t, lp) for t, lp in token.top_logprobs]}
        return data

    # ---- generation -------------------------------------------------------------------------
    # ---- plain requests (no session) --------------------------------------------------------
    def plain_plan(self, prefix: Any, suffix: list[dict], press: dict, scope: str = "") -> dict:
        """Tokenize a plain prompt and look its prefix up in the compressed-prefix index (``scope``:
        deployments.common.prefix_scope)."""
        return self.prefixes.plan(prefix, suffix, press, scope)

    def plain_plan_ids(self, prefix_ids: list[int], suffix_ids: list[int], press: dict, scope: str = "") -> dict:
        """``plain_plan`` for a raw token-id prompt split into the prefix to prefill and the rest."""
        return self.prefixes.plan_ids(list(prefix_ids), list(suffix_ids), press, scope)

    async def prompt_logprobs(self, session_id: str | None, token_ids: list[int], top_k: int) -> list[dict]:
        """Each prompt token's log-prob given the tokens before it (after the session's stored
        context when ``session_id`` is given; else the prompt alone, uncompressed): ``len(token_ids)``
        entries ``{"token", "logprob", "bytes", "top_logprobs": [...]}`` like a generated token's
        (KVEngine.prompt_logprobs); the first one's ``logprob`` and ``top_logprobs`` are None."""
        ckv = None
        if session_id is not None:
            ckv = self._cache(session_id)
            if ckv.meta.codec != "none":
                ckv = codecs.decode(ckv)
        scored = await asyncio.to_thread(self.engine.prompt_logprobs, ckv, list(token_ids), top_k)
        entry = self.token_bytes.logprob_entry
        return [{**entry(token_ids[0], None), "top_logprobs": None}] + [
            {**entry(s.token_id, s.logprob), "top_logprobs": [entry(t, lp) for t, lp in s.top_logprobs]}
            for s in scored[1:]]

    def store_prefix(self, ckv: CompressedKV, scope: str = "") -> str:
        """Keep a plain request's prefill for reuse under ``scope`` (query-agnostic presses only);
        returns the handle id."""
        return self.prefixes.store(ckv, scope)

    async def generate(self, session_id: str | None, question: Any, sampling: dict,
                       cache: CompressedKV | None = None, prefix_handle: str | None = None,
                       prefix_hit: bool = False) -> AsyncIterator[dict]:
        """Stream token dicts for ``question`` on the session's cache (or an explicit ``cache``, or
        the stored plain prefix ``prefix_handle``; ``prefix_hit``: that prefix was reused, not
        prefilled for this request).

        Each yielded dict: ``{"text", "token_id", "finish_reason", "prompt_tokens", "cached_tokens",
        "completion_tokens"}`` plus ``"logprob": {"token", "logprob", "bytes", "top_logprobs"}`` when
        logprobs were asked for; the last one has a finish_reason. ``prompt_tokens`` counts the
        question, plus, without a session, the prefix cache's context (a plain request's whole
        prompt; a session's context is counted by the ingress as cached tokens). ``cached_tokens``
        is that prefix's length on a prefix hit, else 0.
        """
        if prefix_handle is not None:
            ckv = self.prefixes.get(prefix_handle)
        else:
            ckv = cache if cache is not None else self._cache(session_id)
        context_tokens = ckv.meta.original_tokens if session_id is None else 0  # plain: prefix (cached or not)
        cached_tokens = context_tokens if prefix_hit else 0
        if ckv.meta.codec != "none":
            ckv = codecs.decode(ckv)
        params = SamplingParams.model_validate(sampling)
        if self.decode_loop is not None and not self.engine.uses_decoding_press(ckv):
            async for item in self._generate_batched(ckv, question, params, context_tokens, cached_tokens):
                yield item
            return
        stream = await asyncio.to_thread(self.engine.generate, ckv, question, params)
        self.active_streams += 1
        try:
            for _ in itertools.count():
                step = await asyncio.to_thread(next, stream, None)
                if step is None:
                    break
                if step.token is not None:
                    self.tokens_generated += 1
                yield self._step_json(step, params.logprobs, context_tokens, cached_tokens)
        finally:
            self.active_streams -= 1
            stream.close()

    async def _generate_batched(self, ckv: CompressedKV, question: Any, params: SamplingParams,
                                context_tokens: int, cached_tokens: int) -> AsyncIterator[dict]:
        """Stream from the replica's DecodeLoop: the same dicts as the one-request path."""
        input_ids = self.engine.question_ids(ckv, question)
        self.engine.check_request(ckv, input_ids, params)
        if ckv.device != self.engine.device:
            ckv = ckv.to(self.engine.device)
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        request_id = self.decode_loop.submit(
            ckv, input_ids, params, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
        self.active_streams += 1
        finished = False
        try:
            while not finished:
                item = await queue.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                finished = item.finish_reason is not None
                if item.token is not None:
                    self.tokens_generated += 1
                yield self._step_json(item, params.logprobs, context_tokens, cached_tokens)
        finally:
            self.active_streams -= 1
            if not finished:  # cancelled (client gone): leave the batch at the next step
                self.decode_loop.abort(request_id)
