"""DecodeActor: holds a replica's KVPool and answers questions from the caches in it.

An async Ray actor. Generation is a streaming actor method (``num_returns="streaming"``) that
yields one dict per token. Generations are continuously batched: one ``DecodeLoop`` thread per
actor decodes every running generation in one forward per step (deployments/engine/decode/);
requests whose cache runs a decoding-time press (phase ``decoding``/``prefill_decoding``), or all
of them when ``BatchConfig.enabled`` is False, decode alone through ``KVEngine.generate`` (one
request per forward, steps interleaved token by token). Cancelling the stream (client
disconnect) takes the generation out of the batch at the next step.

The KV pool and every storage method live in deployments/serving/cache_storage.py (a mixin).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any, AsyncIterator

from deployments.config import PlainRequestConfig
from deployments.engine.decode import BatchConfig, DecodeLoop, unsupported_reason
from deployments.engine.model_loader import ModelConfig
from deployments.engine.presses import install_press_policy
from deployments.engine.sampling import SamplingParams
from deployments.engine.token_bytes import TokenBytes
from deployments.serving.cache_storage import CacheStorage
from deployments.serving import start_priority
from deployments.serving.model_process import start_engine
from kvpool import codecs
from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig
from transfer import TransferEndpoint, transfer_actor

log = logging.getLogger(__name__)


@transfer_actor
class DecodeActor(CacheStorage, TransferEndpoint):
    """Its storage methods (store, restore, export, free, admin) come from CacheStorage
    (deployments/serving/cache_storage.py). Also a transfer endpoint (transfer.TransferEndpoint):
    migrations move its caches directly to another replica's DecodeActor with the configured
    backend, keyed by session id (CacheStorage's ``transfer_export`` / ``transfer_import``)."""

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
        start_priority.restore()  # a restarted actor started below live work: it serves now

    def ready(self) -> bool:
        return True

    def eos_ids(self) -> list[int]:
        return sorted(self.engine.eos_ids)

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
