"""The storage side of a replica's DecodeActor: its KV pool and everything that keeps caches in it.

A mixin of ``DecodeActor`` (deployments/serving/decode_actor.py), so each method below is an actor
method the replica calls remotely: store a session's cache (and schedule its durable copy,
kvpool/durable_store.py), read a persisted copy back after a restart, extend a stored cache with
new tokens (Responses chains), export/import for transfers (the transfer endpoint's hooks),
pin / quantize / re-compress in place (admin), free, and list what is held or persisted. Pool
events are buffered here and drained by the replica, which forwards them to the control plane.

Needs ``self.engine`` (the replica's KVEngine) before ``_init_storage`` runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from deployments.common.replica_errors import MissingCache
from deployments.config import PlainRequestConfig
from deployments.engine.extend import extend_cache
from deployments.engine.presses.press_stats import PressStatsTotals
from deployments.serving.prefix_cache import PrefixCache
from deployments.serving.session_table import SessionTable
from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig
from kvpool.durable_files import PersistedCacheError, read_persisted
from kvpool.durable_store import DurableStore
from kvpool.errors import UnknownHandleError
from kvpool.handles import KVHandle
from kvpool.packing import PackedKV, pack, unpack
from kvpool.pool import KVPool
from kvpool.press_spec import PressSpec
from kvpool.recompress import recompressor_for


class CacheStorage:
    """A replica's stored caches: ``pool`` (KVPool), ``sessions`` (session id -> pool entry),
    ``prefixes`` (plain requests' compressed prefixes), ``durable`` (DurableStore or None),
    ``press_totals`` and the pending pool ``events``."""

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

    def _on_event(self, event: Any) -> None:
        data = event.to_json()
        if PrefixCache.owns(data["session_id"]):
            return  # prefix-cache entries are this actor's business, not the control plane's
        self.events.append(data)
        if data["kind"] in ("evicted", "freed"):
            self.sessions.forget(data["session_id"], event.handle)

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

    def restore(self, session_id: str, expect: dict, pinned: bool = False, from_dir: str | None = None) -> dict:
        """Read ``session_id``'s persisted cache back into the pool, checking it against ``expect``
        (``owner``, ``press``) and this engine (model id, dtype): this store's copy, or the one
        under ``from_dir`` (another replica's durable directory on this node), then persisted here
        too. Raises PersistedCacheError (``reason`` missing / corrupt / mismatch), or CapacityError
        if the pool has no room."""
        if self.durable is None:
            raise PersistedCacheError("missing", "durable caches are disabled on this replica")
        dtype = str(self.engine.model.dtype).removeprefix("torch.")
        spec = PressSpec.model_validate(expect["press"]).model_dump(mode="json") if expect.get("press") else None
        checks = {"owner": expect.get("owner"), "press": spec, "model_id": self.engine.model_name, "dtype": dtype}
        if from_dir is None:
            ckv = self.durable.read(session_id, **checks)
        else:
            ckv = read_persisted(from_dir, session_id, **checks)
        handle, info = self.sessions.store(session_id, ckv, pinned)
        if from_dir is not None:
            self._persist(session_id, ckv, expect.get("owner"), spec)
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

    def transfer_export(self, key: str) -> PackedKV:
        return self.export(key)

    def transfer_import(self, key: str, packed: PackedKV) -> None:
        self.store(key, unpack(packed))  # owner and press unknown here: the durable copy records None

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
