"""PrefixCache: plain requests (no session) reuse stored compressed prefixes.

A plain prompt is split (deployments.common.plain_prompt) into a prefix and a final turn. The prefix
is tokenized here and looked up in kvpool's CompressedPrefixIndex (content address = model +
press + token ids). On a hit the engine feeds only the tokens after the stored prefix; on a miss
the replica prefills the prefix (compressed when long enough) and hands it back for storing.
Entries live in the replica's KVPool under session ids ``prefix:<n>``, at most
``plain.max_prefix_entries`` of them (oldest freed first), so they cannot crowd out sessions.

Every entry is stored and found under a ``scope`` (deployments.common.prefix_scope: the owner's identity
plus the request's ``cache_salt``): one tenant's prompts never hit, or reveal, another's entries.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from deployments.config import PlainRequestConfig
from deployments.engine.engine import KVEngine
from kvpool.compressed_kv import CompressedKV
from kvpool.errors import UnknownHandleError
from kvpool.handles import KVHandle
from kvpool.pool import KVPool
from kvpool.prefix_index import CompressedPrefixIndex
from kvpool.press_spec import PressSpec

_PREFIX = "prefix:"


class PrefixCache:
    def __init__(self, pool: KVPool, engine: KVEngine, config: PlainRequestConfig):
        self.pool, self.engine, self.config = pool, engine, config
        self.index = CompressedPrefixIndex(pool, block_tokens=config.block_tokens)
        self.entries: deque[KVHandle] = deque()
        self._ids = itertools.count()

    @staticmethod
    def owns(session_id: str | None) -> bool:
        return bool(session_id) and session_id.startswith(_PREFIX)

    def plan(self, prefix: Any, suffix: list[dict], press: dict, scope: str = "") -> dict:
        """``{"prefix_ids", "suffix_ids", "hit_handle", "hit_tokens"}`` for a plain prompt, looked up
        among the entries stored under ``scope``."""
        frame, prefix_ids = self.engine.frame_for(prefix)
        suffix_ids = self.engine.renderer.encode(self.engine.renderer.question_text(frame, suffix))
        return self.plan_ids(prefix_ids, suffix_ids, press, scope)

    def plan_ids(self, prefix_ids: list[int], suffix_ids: list[int], press: dict, scope: str = "") -> dict:
        """``plan`` for a prompt already split into token ids (a raw-text prompt: no chat template)."""
        hit = None
        if self.config.prefix_cache and prefix_ids:
            hit = self.index.lookup(self.engine.model_name, self._effective_press(press, len(prefix_ids)), prefix_ids,
                                    scope=scope)
        return {"prefix_ids": prefix_ids, "suffix_ids": suffix_ids,
                "hit_handle": hit.handle.id if hit else None, "hit_tokens": hit.prefix_tokens if hit else 0}

    @staticmethod
    def _effective_press(press: dict, n_tokens: int) -> PressSpec:
        """The spec a prefill of ``n_tokens`` actually applies (none below ``min_tokens``)."""
        spec = PressSpec.model_validate(press)
        return spec if n_tokens >= spec.min_tokens else PressSpec()

    def store(self, ckv: CompressedKV, scope: str = "") -> str | None:
        """Store + index a plain request's prefill under ``scope``; None when it can't be shared
        (query-aware)."""
        if not self.config.prefix_cache or not ckv.meta.query_agnostic:
            return None
        spec = self._effective_press(ckv.meta.press, ckv.meta.original_tokens)
        ckv = ckv.with_meta(press=spec.model_dump(mode="json"))
        handle = self.pool.put(ckv, f"{_PREFIX}{next(self._ids)}")
        self.index.insert(handle, scope=scope)
        self.entries.append(handle)
        while len(self.entries) > self.config.max_prefix_entries:
            old = self.entries.popleft()
            try:
                self.pool.free(old)
            except UnknownHandleError:
                pass  # evicted already (an eviction can land between a check and the free)
        return handle.id

    def get(self, handle_id: str) -> CompressedKV:
        return self.pool.get(KVHandle(handle_id), decoded=True)

    def stats(self) -> dict:
        return {**self.index.stats(), "entries": len(self.entries)}
