"""DecodeActor: holds a replica's KVPool and answers questions from the caches in it.

An async Ray actor. Generation is a streaming actor method (``num_returns="streaming"``) that
yields one dict per token; each model step runs in a worker thread so many streams interleave
(the engine serialises the steps themselves). Cancelling the stream (client disconnect) stops
the generation at the next token.

Pool events are buffered and drained by the replica, which forwards them to the control plane.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Any, AsyncIterator

from deployments.config import PlainRequestConfig
from deployments.engine.model_loader import ModelConfig
from deployments.prefix_cache import PrefixCache
from deployments.engine.sampling import SamplingParams
from deployments.model_process import start_engine
from kvpool import codecs
from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig
from kvpool.errors import KVFleetError
from kvpool.handles import KVHandle
from kvpool.packing import PackedKV, pack, unpack
from kvpool.pool import KVPool
from kvpool.recompress import knorm_recompressor
from transfer import TransferEndpoint, transfer_actor

log = logging.getLogger(__name__)


class MissingCache(KVFleetError):
    """This decode actor holds no cache for the session: it was lost (e.g. the actor restarted)
    and the control plane is about to rebuild it, or it moved (HTTP 409: retry shortly)."""


@transfer_actor
class DecodeActor(TransferEndpoint):
    """Also a transfer endpoint (transfer.TransferEndpoint): migrations move its caches directly
    to another replica's DecodeActor with the configured backend, keyed by session id."""

    def __init__(self, model: dict, torch_threads: int, pool: dict, plain: dict | None = None):
        self.engine = start_engine(ModelConfig.model_validate(model), torch_threads)
        self.pool = KVPool(KVPoolConfig.model_validate(pool), recompressor=knorm_recompressor)
        self.plain = PlainRequestConfig.model_validate(plain or {})
        self.prefixes = PrefixCache(self.pool, self.engine, self.plain)
        self.handles: dict[str, KVHandle] = {}
        self.events: deque[dict] = deque(maxlen=100_000)
        self.pool.subscribe(self._on_event)
        self.active_streams = 0
        self.tokens_generated = 0

    def ready(self) -> bool:
        return True

    def _on_event(self, event: Any) -> None:
        data = event.to_json()
        if PrefixCache.owns(data["session_id"]):
            return  # prefix-cache entries are this actor's business, not the control plane's
        self.events.append(data)
        if data["kind"] in ("evicted", "freed") and self.handles.get(data["session_id"]) == event.handle:
            del self.handles[data["session_id"]]

    # ---- storage ----------------------------------------------------------------------------
    def store(self, session_id: str, ckv: CompressedKV, pinned: bool = False) -> dict:
        """Put a session's cache in the pool (replacing an older one); returns what was stored."""
        old = self.handles.get(session_id)
        handle = self.pool.put(ckv, session_id, pin=pinned)
        self.handles[session_id] = handle
        if old is not None and old in self.pool:
            self.pool.free(old)
        info = self.pool.info(handle)
        return {"handle": handle.id, "stored_bytes": info.nbytes, "tier": info.tier.value,
                "read_tokens": ckv.meta.original_tokens, "kept_tokens": round(ckv.meta.kept_tokens),
                "codec": info.codec}

    def export(self, session_id: str) -> PackedKV:
        """Pack a session's cache for a transfer (the stored entry stays until ``free``)."""
        return pack(self._cache(session_id, decoded=False))

    def free(self, session_id: str) -> int:
        handle = self.handles.pop(session_id, None)
        return self.pool.free(handle) if handle is not None and handle in self.pool else 0

    def holds(self) -> dict[str, dict]:
        """Every session this pool holds: ``{session_id: {"handle", "tier", "nbytes"}}``."""
        out = {}
        for session, handle in list(self.handles.items()):
            if handle in self.pool:
                info = self.pool.info(handle)
                out[session] = {"handle": handle.id, "tier": info.tier.value, "nbytes": info.nbytes}
        return out

    def _cache(self, session_id: str, decoded: bool = True) -> CompressedKV:
        handle = self.handles.get(session_id)
        if handle is None or handle not in self.pool:
            raise MissingCache(f"session {session_id!r} is not loaded on this replica right now "
                               "(being rebuilt or moved); retry shortly")
        return self.pool.get(handle, decoded=decoded)

    # ---- transfer hooks (run on the endpoint's transfer threads) ------------------------------
    def transfer_export(self, key: str) -> PackedKV:
        return self.export(key)

    def transfer_import(self, key: str, packed: PackedKV) -> None:
        self.store(key, unpack(packed))

    # ---- admin ------------------------------------------------------------------------------
    def set_pinned(self, session_id: str, pinned: bool) -> None:
        handle = self._handle(session_id)
        (self.pool.pin if pinned else self.pool.unpin)(handle)

    def quantize(self, session_id: str, codec: str) -> dict:
        info = self.pool.quantize(self._handle(session_id), codec)
        return {"stored_bytes": info.nbytes, "codec": codec}

    def dequantize(self, session_id: str) -> dict:
        info = self.pool.dequantize(self._handle(session_id))
        return {"stored_bytes": info.nbytes, "codec": "none"}

    def recompress(self, session_id: str, compression_ratio: float) -> dict:
        info = self.pool.recompress(self._handle(session_id), compression_ratio)
        return {"stored_bytes": info.nbytes}

    def _handle(self, session_id: str) -> KVHandle:
        handle = self.handles.get(session_id)
        if handle is None:
            raise MissingCache(f"no stored cache for session {session_id!r} on this replica")
        return handle

    def drain_events(self) -> list[dict]:
        out = list(self.events)
        self.events.clear()
        return out

    def stats(self) -> dict:
        snapshot = self.pool.stats_snapshot()
        snapshot["active_streams"] = self.active_streams
        snapshot["tokens_generated"] = self.tokens_generated
        snapshot["session_count"] = len(self.handles)
        snapshot["prefix_cache"] = self.prefixes.stats()
        return snapshot

    def _step_json(self, step: Any, logprobs: bool, context_tokens: int = 0, cached_tokens: int = 0) -> dict:
        token = step.token
        data = {"text": step.text, "finish_reason": step.finish_reason,
                "token_id": token.token_id if token else None,
                "prompt_tokens": context_tokens + step.prompt_tokens, "cached_tokens": cached_tokens,
                "completion_tokens": step.completion_tokens}
        if logprobs and token is not None:
            decode = self.engine.tokenizer.decode
            data["logprob"] = {"token": decode([token.token_id]), "logprob": token.logprob,
                               "top_logprobs": [{"token": decode([t]), "logprob": lp} for t, lp in token.top_logprobs]}
        return data

    # ---- generation -------------------------------------------------------------------------
    # ---- plain requests (no session) --------------------------------------------------------
    def plain_plan(self, prefix: Any, suffix: list[dict], press: dict, scope: str = "") -> dict:
        """Tokenize a plain prompt and look its prefix up in the compressed-prefix index (``scope``:
        deployments.prefix_scope)."""
        return self.prefixes.plan(prefix, suffix, press, scope)

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
        "completion_tokens"}`` plus ``"logprob": {"token", "logprob", "top_logprobs"}`` when
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
