"""Compressed-prefix index: find the longest stored compressed cache that a new prompt starts with.

Content address = scope + model id + PressSpec digest + token ids, as chained block hashes::

    hash_0 = H(scope, model_id, press digest)
    hash_i = H(hash_{i-1}, tokens of block i)        (blocks of ``block_tokens`` tokens)

``scope`` keeps tenants apart: the caller derives it from the owner (API key identity) and an
optional ``cache_salt`` (vLLM's request field), so an entry is found only by lookups with the same
scope. The empty scope is a shared namespace.

A stored cache covers exactly its ``meta.token_ids`` (a pruned cache cannot be cut shorter: it
does not record which positions it kept), so an entry sits in the bucket of the hash of its full
blocks, together with its tail (the < ``block_tokens`` tokens after them). A lookup walks the
prompt's block hashes once and checks each bucket: O(prompt blocks) hash-table probes, plus a
compare of at most one short tail per stored entry found on the way.

Only query-agnostic caches are shared: a query-aware press keeps tokens chosen for one question.
Entries leave when the pool frees, evicts or re-compresses their handle (the index subscribes to
pool events). A hit's handle can still vanish before the caller reads it: treat
UnknownHandleError from ``pool.get`` as a miss.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvpool.compressed_kv import KVMeta
from kvpool.errors import CacheLayoutError, QueryAwareCacheError
from kvpool.events import EventKind, PoolEvent
from kvpool.handles import KVHandle, SessionId
from kvpool.pool import KVPool
from kvpool.press_spec import PressSpec

DEFAULT_BLOCK_TOKENS = 16
_DROPS = frozenset({EventKind.EVICTED, EventKind.FREED, EventKind.RECOMPRESSED})


def chain_seed(model_id: str, press: PressSpec | dict[str, Any], scope: str = "") -> bytes:
    """``hash_0``: the content address of the empty prefix for this scope, model and press."""
    spec = press if isinstance(press, PressSpec) else PressSpec.model_validate(press)
    scoped = f"{scope}\x00" if scope else ""  # the empty scope keeps the addresses it always had
    return hashlib.blake2b(f"{scoped}{model_id}\x00{spec.digest()}".encode(), digest_size=16).digest()


def next_block_hash(previous: bytes, block: Sequence[int]) -> bytes:
    """``hash_i = H(hash_{i-1}, block)``; token ids hashed as little-endian int64 (stable across hosts)."""
    tokens = array("q", block)
    if sys.byteorder == "big":
        tokens.byteswap()
    return hashlib.blake2b(previous + tokens.tobytes(), digest_size=16).digest()


def block_hashes(model_id: str, press: PressSpec | dict[str, Any], token_ids: Sequence[int],
                 block_tokens: int = DEFAULT_BLOCK_TOKENS, scope: str = "") -> list[bytes]:
    """``[hash_0, ..., hash_m]`` for the ``m = len(token_ids) // block_tokens`` full blocks (for routing
    by content, e.g. prefix affinity in the control plane)."""
    hashes = [chain_seed(model_id, press, scope)]
    for start in range(0, len(token_ids) - block_tokens + 1, block_tokens):
        hashes.append(next_block_hash(hashes[-1], token_ids[start:start + block_tokens]))
    return hashes


@dataclass(frozen=True)
class PrefixHit:
    """The prompt's first ``prefix_tokens`` tokens are served by the cache at ``handle``."""

    handle: KVHandle
    session_id: SessionId
    prefix_tokens: int


class CompressedPrefixIndex:
    """Thread-safe index over one KVPool's query-agnostic caches."""

    def __init__(self, pool: KVPool, *, block_tokens: int = DEFAULT_BLOCK_TOKENS) -> None:
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = block_tokens
        self._pool = pool
        self._lock = threading.Lock()
        # full-blocks hash -> tail tokens -> handles (oldest first) -> session
        self._buckets: dict[bytes, dict[tuple[int, ...], collections.OrderedDict[KVHandle, SessionId]]] = {}
        self._where: dict[KVHandle, tuple[bytes, tuple[int, ...]]] = {}
        self.hits = self.misses = self.reused_tokens = self.looked_up_tokens = 0
        self._unsubscribe = pool.subscribe(self._on_event)

    def insert(self, handle: KVHandle, *, scope: str = "") -> int:
        """Index the cache held at ``handle`` under ``scope``, its model, press and token ids; return the
        tokens it covers.

        Raises QueryAwareCacheError for a query-aware cache, CacheLayoutError when its meta has no
        (or inconsistent) token ids, UnknownHandleError if the pool no longer holds it.
        """
        info = self._pool.info(handle)
        key, tail = self._address(info.meta, scope)
        with self._lock:
            self._buckets.setdefault(key, {}).setdefault(tail, collections.OrderedDict())[handle] = info.session_id
            self._where[handle] = (key, tail)
        if handle not in self._pool:  # evicted before we registered: its event may already be gone
            self.remove(handle)
        return len(info.meta.token_ids)

    def lookup(self, model_id: str, press: PressSpec | dict[str, Any], token_ids: Sequence[int], *,
               max_prefix_tokens: int | None = None, scope: str = "") -> PrefixHit | None:
        """The longest cache indexed under ``scope`` whose tokens the prompt starts with (at most
        ``max_prefix_tokens``, e.g. ``len(prompt) - 1`` to leave a token to feed), or None. Counts a
        hit or a miss."""
        tokens = tuple(token_ids)
        limit = len(tokens) if max_prefix_tokens is None else min(len(tokens), max_prefix_tokens)
        hashes = block_hashes(model_id, press, tokens[:limit], self.block_tokens, scope)  # hashing needs no lock
        best: PrefixHit | None = None
        with self._lock:
            for block, key in enumerate(hashes):
                start = block * self.block_tokens
                for tail, handles in self._buckets.get(key, {}).items():
                    end = start + len(tail)
                    if end <= limit and (best is None or end > best.prefix_tokens) and tokens[start:end] == tail:
                        live = [h for h in reversed(handles) if h in self._pool]  # newest first
                        if live:
                            best = PrefixHit(live[0], handles[live[0]], end)
            self.looked_up_tokens += len(tokens)
            if best is None:
                self.misses += 1
            else:
                self.hits += 1
                self.reused_tokens += best.prefix_tokens
        return best

    def remove(self, handle: KVHandle) -> bool:
        """Forget ``handle``; True if it was indexed."""
        with self._lock:
            where = self._where.pop(handle, None)
            if where is None:
                return False
            key, tail = where
            handles = self._buckets[key][tail]
            del handles[handle]
            if not handles:
                del self._buckets[key][tail]
                if not self._buckets[key]:
                    del self._buckets[key]
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._where)

    def stats(self) -> dict[str, Any]:
        """``{entries, hits, misses, hit_rate, reused_tokens, looked_up_tokens, token_hit_rate}``."""
        with self._lock:
            lookups = self.hits + self.misses
            return {"entries": len(self._where), "hits": self.hits, "misses": self.misses,
                    "hit_rate": self.hits / lookups if lookups else 0.0, "reused_tokens": self.reused_tokens,
                    "looked_up_tokens": self.looked_up_tokens,
                    "token_hit_rate": self.reused_tokens / self.looked_up_tokens if self.looked_up_tokens else 0.0}

    def close(self) -> None:
        """Stop following the pool's events."""
        self._unsubscribe()

    def _on_event(self, event: PoolEvent) -> None:
        if event.kind in _DROPS:
            self.remove(event.handle)

    def _address(self, meta: KVMeta, scope: str) -> tuple[bytes, tuple[int, ...]]:
        if not meta.query_agnostic:
            raise QueryAwareCacheError(
                f"the cache was compressed with a query-aware press ({meta.press.get('name', '?')!r}): the tokens it "
                "kept were chosen for one question, so it cannot serve other prompts as a prefix. Keep it as a "
                "session cache, or prefill with a query-agnostic press (e.g. knorm, streaming_llm) to share it.")
        if not meta.token_ids:
            raise CacheLayoutError("the cache's meta.token_ids is empty; the engine must record the context's "
                                   "token ids to index it as a prefix")
        if len(meta.token_ids) != meta.original_tokens:
            raise CacheLayoutError(f"meta.token_ids has {len(meta.token_ids)} ids but original_tokens is "
                                   f"{meta.original_tokens}; they must describe the same context")
        hashes = block_hashes(meta.model_id, meta.press, meta.token_ids, self.block_tokens, scope)
        full = (len(hashes) - 1) * self.block_tokens
        return hashes[-1], tuple(meta.token_ids[full:])
