"""KVPool: compressed KV caches held by opaque handle, under a byte budget per tier.

Tiers, fastest first: accelerator memory (only with a CUDA ``device``), host memory, a disk
directory (``disk_dir``). Budgets count ``CompressedKV.nbytes``, the tensor bytes actually held,
and are never exceeded. A put that does not fit makes room in the tier: the eviction policy
ranks the unpinned entries there, and each victim is spilled to the next tier with room, or,
from the last tier, re-compressed (if configured) and then evicted. Pinned entries never move
down. If nothing can make room, CapacityError says how many bytes were needed and free.
``get`` of a spilled entry promotes it back up (spilling others if needed).

Every state change is an event (``pool.events``, ``pool.subscribe``), delivered after the lock is
released. One lock guards the bookkeeping; disk reads (get, quantize, recompress) and codec or
recompress work run outside it and are re-validated by entry version afterwards. Disk writes of
spills happen under the lock, so a spill is atomic with the budget change it causes.

Typical use::

    pool = KVPool(KVPoolConfig(host_budget_bytes="512MiB", disk_dir="/var/kv", disk_budget_bytes="8GiB"))
    handle = pool.put(ckv, SessionId("s-1"), pin=False)
    ckv = pool.get(handle, decoded=True)   # codec "none", ready for ckv.padded_layers()
    pool.free(handle)
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kvpool import codecs
from kvpool.cast import cast_dtype
from kvpool.codecs.base import torch_dtype
from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig
from kvpool.durable_store import DurableStore
from kvpool.entry import EntryInfo, PoolEntry
from kvpool.errors import KVFleetError, RecompressError, UnknownHandleError
from kvpool.events import EventBus, EventKind, Subscriber
from kvpool.handles import KVHandle, SessionId, Tier
from kvpool.recompress import Recompressor, recompress_in_codec
from kvpool.stats import AccessStats
from kvpool.tiered_store import TieredStore

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # re-reads when an entry changes while we work on it outside the lock


class KVPool:
    """Thread-safe store of CompressedKV by KVHandle. See the module docstring for the model."""

    def __init__(self, config: KVPoolConfig | None = None, *, recompressor: Recompressor | None = None,
                 dtype: str | None = None, durable: DurableStore | None = None) -> None:
        """``dtype``: the dtype of the model that reads this pool's caches (e.g. ``"bfloat16"``);
        ``put`` converts a cache of another dtype to it and logs it (kvpool.cast). None: caches
        are held in whatever dtype they come. ``durable``: the store that persists these sessions'
        caches; a spill to the disk tier then reuses a durable file that holds exactly the cache
        (hard link, bytes counted once: kvpool.tiered_store). Raises RecompressError if re-compression is enabled
        without a ``recompressor``, PoolConfigError for a CUDA tier where CUDA is missing, and
        CodecError for a ``dtype`` that is no torch dtype name."""
        self.config = config or KVPoolConfig()
        self.dtype = None if dtype is None else str(torch_dtype(dtype)).removeprefix("torch.")
        if self.config.recompress.enabled and recompressor is None:
            raise RecompressError("recompress.enabled needs a recompressor: pass KVPool(..., recompressor="
                                  "kvpool.recompress.knorm_recompressor) or the engine's")
        self._pruner = functools.partial(recompress_in_codec, recompressor) if recompressor else None
        self.events = EventBus(self.config.recent_events)
        self.stats = AccessStats(self.config.stats_series_len)
        self._store = TieredStore(self.config, self.events, self.stats, self._pruner, durable)
        self._lock = threading.RLock()

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The configured tiers, fastest first."""
        return self._store.tier_names

    @property
    def counters(self) -> dict[str, int]:
        """Counted non-events: ``promotions_refused``, ``recompress_without_gain``, ``spills_shared``
        (spills that hard-linked the durable copy), ``spill_link_failed``."""
        with self._lock:
            return dict(self._store.counters)

    def put(self, ckv: CompressedKV, session_id: SessionId, *, pin: bool = False, codec: str | None = None) -> KVHandle:
        """Store ``ckv`` for ``session_id`` in the fastest tier that can make room; return its handle.

        ``codec``: store with this codec; default: ``config.default_codec`` for a codec-"none"
        cache, or keep the cache's own codec. The pool may keep references to ``ckv``'s tensors
        (CompressedKV is immutable by contract): don't modify them in place afterwards.
        A cache in another dtype than the pool's ``dtype`` is converted first (logged).
        Raises CapacityError (nothing stored, nothing moved) if no tier can make room.
        """
        if self.dtype is not None and ckv.meta.dtype != self.dtype:
            log.info("session %s: cache arrived in %s, converted to %s (the dtype of this replica's model)",
                     session_id, ckv.meta.dtype, self.dtype)
            ckv = cast_dtype(ckv, self.dtype)
        if codec is None:
            codec = self.config.default_codec if ckv.meta.codec == "none" else ckv.meta.codec
        stored = codecs.encode(ckv, codec)
        entry = PoolEntry.create(KVHandle.new(), session_id, stored, pin)
        with self._changing():
            self._store.add(entry, stored)
        return entry.handle

    def get(self, handle: KVHandle, *, promote: bool = True, decoded: bool = False) -> CompressedKV:
        """The stored cache (treat it as read-only). Counts a hit; promotes a spilled entry to the
        fastest tier with room unless ``promote=False``; ``decoded=True`` returns codec "none".

        Raises UnknownHandleError (``reason`` unknown/freed/evicted) for a handle not held.
        """
        with self._changing():
            try:
                self._store.require(handle)
            except UnknownHandleError as error:
                self.stats.record_miss(error.reason)
                raise
            self._store.policy.on_access(handle)
            self.stats.record_hit(handle)
        ckv, version = self._data(handle)
        if promote:
            with self._changing():
                entry = self._store.entries.get(handle)
                if entry is not None and entry.version == version and entry.tier is not self.tiers[0]:
                    ckv = self._store.promote(entry, ckv)
        return codecs.decode(ckv) if decoded else ckv

    def info(self, handle: KVHandle) -> EntryInfo:
        """Where and how ``handle`` is stored (no hit, no promotion). Raises UnknownHandleError."""
        with self._lock:
            return self._store.require(handle).info()

    def __contains__(self, handle: object) -> bool:
        with self._lock:
            return handle in self._store.entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._store.entries)

    def handles(self, session_id: SessionId | None = None) -> list[KVHandle]:
        """Handles held (of one session, if given)."""
        with self._lock:
            return [handle for handle, entry in self._store.entries.items()
                    if session_id is None or entry.session_id == session_id]

    def free(self, handle: KVHandle) -> int:
        """Drop ``handle`` (pinned or not); return the bytes released. Raises UnknownHandleError."""
        with self._changing():
            entry = self._store.require(handle)
            self._store.remove(entry, EventKind.FREED, "freed by caller")
            return entry.nbytes

    def free_session(self, session_id: SessionId) -> int:
        """Drop every entry of ``session_id``; return the bytes released (0 if it held none)."""
        with self._changing():
            entries = [entry for entry in self._store.entries.values() if entry.session_id == session_id]
            for entry in entries:
                self._store.remove(entry, EventKind.FREED, "session freed")
            return sum(entry.nbytes for entry in entries)

    def pin(self, handle: KVHandle) -> None:
        """Never spill or evict ``handle`` until unpinned. Raises UnknownHandleError."""
        self._set_pinned(handle, True)

    def unpin(self, handle: KVHandle) -> None:
        self._set_pinned(handle, False)

    def quantize(self, handle: KVHandle, codec: str = "int8") -> EntryInfo:
        """Re-encode a stored entry with ``codec`` in place (bytes shrink; event QUANTIZED)."""
        codecs.get_codec(codec)  # an unknown name fails before any work
        return self._transform(handle, lambda ckv: codecs.encode(ckv, codec), EventKind.QUANTIZED,
                               f"codec {codec}")

    def dequantize(self, handle: KVHandle) -> EntryInfo:
        """Decode a stored entry to codec "none" in place, making room in its tier as it grows.
        Raises CapacityError (entry unchanged) if its tier cannot make room."""
        return self._transform(handle, codecs.decode, EventKind.DEQUANTIZED, "codec none")

    def recompress(self, handle: KVHandle, compression_ratio: float) -> EntryInfo:
        """Re-prune a stored entry so it keeps ``1 - compression_ratio`` of its original tokens
        (no-op if it is already tighter). Raises RecompressError if the pool has no recompressor."""
        if self._pruner is None:
            raise RecompressError("this pool has no recompressor; create it with KVPool(..., recompressor=...)")
        return self._transform(handle, lambda ckv: self._pruner(ckv, compression_ratio), EventKind.RECOMPRESSED,
                               f"ratio -> {compression_ratio:.2f} on request")

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every later PoolEvent; returns the unsubscribe function."""
        return self.events.subscribe(callback)

    def usage(self) -> dict[str, dict[str, int]]:
        """Per tier: budget_bytes, held_bytes, free_bytes, entries, pinned_bytes."""
        with self._lock:
            return self._store.usage()

    def stats_snapshot(self) -> dict[str, Any]:
        """AccessStats snapshot plus tier usage and pool counters (JSON-able)."""
        snapshot = self.stats.snapshot()
        snapshot["tiers"] = self.usage()
        snapshot["counters"] = self.counters
        return snapshot

    def audit(self) -> dict[str, int]:
        """Recount every tier from the data itself (tensor bytes, file sizes) and check the books.
        Returns bytes per tier; raises RuntimeError ("kvpool bug") on any disagreement."""
        with self._lock:
            return self._store.audit()

    def close(self) -> None:
        """Free every entry (FREED events) and delete this pool's disk files."""
        with self._changing():
            for entry in list(self._store.entries.values()):
                self._store.remove(entry, EventKind.FREED, "pool closed")

    def __enter__(self) -> "KVPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lock for a change, then deliver its events with the lock released."""
        try:
            with self._lock:
                yield
        finally:
            self.events.deliver()

    def _data(self, handle: KVHandle) -> tuple[CompressedKV, int]:
        """(stored data, version) of ``handle``; a disk read happens outside the lock."""
        for _ in range(MAX_ATTEMPTS):
            with self._lock:
                entry = self._store.require(handle)
                if entry.ckv is not None:
                    return entry.ckv, entry.version
                location, version = entry.location, entry.version
            try:
                return self._store.disk.read(location), version
            except FileNotFoundError:
                continue  # moved or replaced while we read: look again
        raise KVFleetError(f"entry {handle} kept moving while being read ({MAX_ATTEMPTS} tries); retry later")

    def _transform(self, handle: KVHandle, change: Callable[[CompressedKV], CompressedKV], kind: EventKind,
                   detail: str) -> EntryInfo:
        """Replace an entry's data by ``change(data)``, computed outside the lock and redone if the
        entry changed meanwhile. ``change`` returning its input means there is nothing to do."""
        for _ in range(MAX_ATTEMPTS):
            source, version = self._data(handle)
            changed = change(source)
            with self._changing():
                entry = self._store.require(handle)
                if entry.version != version:
                    continue
                if changed is not source:
                    grow = changed.nbytes - self._store.charged(entry)
                    if grow > 0:
                        self._store.make_room(self._store.index[entry.tier], grow, frozenset({handle}))
                    self._store.replace(entry, changed, kind, detail)
                return entry.info()
        raise KVFleetError(f"entry {handle} kept changing while being re-encoded ({MAX_ATTEMPTS} tries); retry later")

    def _set_pinned(self, handle: KVHandle, pinned: bool) -> None:
        with self._changing():
            entry = self._store.require(handle)
            if entry.pinned != pinned:
                entry.pinned = pinned
                self._store.record(EventKind.PINNED if pinned else EventKind.UNPINNED, entry,
                                   previous_nbytes=entry.nbytes)
