"""TieredStore: the KVPool's books and data movement between tiers.

Every method runs with the pool's lock held (the KVPool owns the lock). The store keeps the
invariant the pool promises: a tier's bytes never exceed its budget. ``make_room`` first checks
that moving out every unpinned entry would be enough and raises CapacityError *before changing
anything* if not; afterwards it cannot fail for lack of room, because a victim that no lower
tier can take is evicted. Victims go in the eviction policy's order; in the last tier they are
first re-compressed step by step (if enabled), then evicted.

With a durable store (kvpool.durable_store), a victim spilled to the disk tier whose durable file
holds exactly its bytes is hard-linked from there instead of written again (kvpool.disk_store
``link``): the tier counts it as 0 bytes (the durable budget already counts them once), so it is
never a useful victim in the disk tier, and removing it deletes the link, not the durable copy.
The bytes a tier counts for an entry (``TierState.members``) are therefore its ``charged`` bytes,
which equal ``entry.nbytes`` except for such shared spills.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from typing import Any

from kvpool.compressed_kv import CompressedKV
from kvpool.config import KVPoolConfig, RecompressConfig
from kvpool.disk_store import DiskLocation, DiskStore
from kvpool.durable_store import DurableStore
from kvpool.entry import PoolEntry
from kvpool.errors import CapacityError, UnknownHandleError
from kvpool.events import REMOVALS, EventBus, EventKind
from kvpool.eviction.registry import make_policy
from kvpool.handles import KVHandle, Tier
from kvpool.recompress import current_ratio
from kvpool.sizes import format_bytes
from kvpool.stats import AccessStats
from kvpool.tiers import TierState, build_tiers

log = logging.getLogger(__name__)
Placed = tuple[CompressedKV | None, DiskLocation | None]
Pruner = Callable[[CompressedKV, float], CompressedKV]  # re-prune in the cache's own codec
_FORGOTTEN = {EventKind.FREED: "freed", EventKind.EVICTED: "evicted"}
_ADVICE = {"evicted": "the pool needed room and no tier could keep it; rebuild the session by re-prefilling",
           "freed": "it was freed", "unknown": "it was never stored here (another replica?)"}


class TieredStore:
    """Entries, tiers and their budgets, the eviction policy, and the moves between tiers."""

    def __init__(self, config: KVPoolConfig, events: EventBus, stats: AccessStats, pruner: Pruner | None,
                 durable: DurableStore | None = None) -> None:
        self.config = config
        self.tiers = build_tiers(config)
        self.index = {state.tier: i for i, state in enumerate(self.tiers)}
        self.disk = DiskStore(config.disk_dir) if config.disk_dir is not None else None
        self.policy = make_policy(config.eviction_policy)
        self.entries: dict[KVHandle, PoolEntry] = {}
        self.forgotten: collections.OrderedDict[KVHandle, str] = collections.OrderedDict()
        self.counters: collections.Counter[str] = collections.Counter()
        self._events, self._stats, self._pruner = events, stats, pruner
        self.durable = durable

    # ---- lookups ------------------------------------------------------------------------------

    def require(self, handle: KVHandle) -> PoolEntry:
        """The entry of ``handle``; UnknownHandleError saying whether it was freed, evicted or never here."""
        entry = self.entries.get(handle)
        if entry is not None:
            return entry
        reason = self.forgotten.get(handle, "unknown")
        raise UnknownHandleError(f"KV handle {handle} is not held: {_ADVICE[reason]}", reason)

    def tier_of(self, entry: PoolEntry) -> TierState:
        return self.tiers[self.index[entry.tier]]

    def load(self, entry: PoolEntry) -> CompressedKV:
        """``entry``'s data (a disk read, under the lock, if it is on disk)."""
        return entry.ckv if entry.ckv is not None else self.disk.read(entry.location)

    def data_bytes(self, entry: PoolEntry) -> int:
        """Bytes the data really occupies and this pool counts: tensor bytes in memory, buffer file
        size on disk - 0 for a buffer shared with the durable copy (RuntimeError if its size is off)."""
        if entry.ckv is not None:
            return entry.ckv.nbytes
        held = self.disk.held_bytes(entry.location)
        if entry.location.shared:
            if held != entry.nbytes:
                raise RuntimeError(f"kvpool bug: shared spill file of {entry.handle} holds {held} bytes, "
                                   f"not {entry.nbytes}")
            return 0
        return held

    def charged(self, entry: PoolEntry) -> int:
        """The bytes ``entry``'s tier counts for it (0 for a spill shared with the durable copy)."""
        return self.tier_of(entry).members[entry.handle]

    def pinned_bytes(self, state: TierState) -> int:
        return sum(nbytes for handle, nbytes in state.members.items() if self.entries[handle].pinned)

    # ---- adding and removing ------------------------------------------------------------------

    def add(self, entry: PoolEntry, ckv: CompressedKV) -> None:
        """Store a new entry in the fastest tier that can make room. CapacityError: nothing changed."""
        reasons = []
        for index, state in enumerate(self.tiers):
            try:
                self.make_room(index, entry.nbytes, frozenset())
            except CapacityError as error:
                reasons.append(f"{state.tier}: {error}")
                continue
            self._commit(entry, state, self._place(state, entry, ckv))
            self.entries[entry.handle] = entry
            self.policy.on_insert(entry.handle)
            self.record(EventKind.STORED, entry, detail=f"codec {entry.meta.codec}")
            return
        raise CapacityError(f"cannot store {format_bytes(entry.nbytes)} ({entry.nbytes} bytes) for session "
                            f"{entry.session_id!r}: " + "; ".join(reasons) + ". Free or unpin sessions, raise the "
                            "budgets, or store with codec 'int8'.")

    def remove(self, entry: PoolEntry, kind: EventKind, detail: str, *, counted: bool = True) -> None:
        """Drop ``entry`` (FREED or EVICTED), remembering why for later UnknownHandleErrors."""
        if counted:
            self.tier_of(entry).remove(entry.handle)
        if entry.location is not None:
            self.disk.delete(entry.location)
        entry.ckv, entry.location = None, None
        del self.entries[entry.handle]
        self.policy.on_remove(entry.handle)
        self.forgotten[entry.handle] = _FORGOTTEN[kind]
        while len(self.forgotten) > self.config.remembered_removals:
            self.forgotten.popitem(last=False)
        self.record(kind, entry, detail=detail)

    # ---- making room --------------------------------------------------------------------------

    def make_room(self, index: int, need: int, exclude: frozenset[KVHandle]) -> None:
        """Ensure tier ``index`` has ``need`` free bytes, moving out unpinned entries not in ``exclude``.
        Raises CapacityError before changing anything if that cannot be enough."""
        state = self.tiers[index]
        if state.free_bytes >= need:
            return
        candidates = [h for h, counted in state.members.items()
                      if counted and h not in exclude and not self.entries[h].pinned]
        movable = sum(state.members[h] for h in candidates)
        if state.free_bytes + movable < need:
            raise CapacityError(f"needed {format_bytes(need)} ({need} bytes), "
                                f"{state.describe(self.pinned_bytes(state))} ({state.free_bytes} bytes free, "
                                f"{movable} movable)")
        victims = self.policy.rank_victims(candidates)
        if index == len(self.tiers) - 1 and self.config.recompress.enabled:
            for handle in victims:
                self._squeeze(self.entries[handle], state, need, self.config.recompress)
                if state.free_bytes >= need:
                    return
        for handle in victims:
            if state.free_bytes >= need:
                return
            self._demote(self.entries[handle], index, exclude)

    def promote(self, entry: PoolEntry, ckv: CompressedKV) -> CompressedKV:
        """Move ``entry`` (whose data is ``ckv``) to the fastest tier above it that can make room;
        return its data there (or ``ckv`` if no faster tier can take it).

        The bytes it leaves behind are released first, so victims spilled on the way down can take
        its place (a swap) instead of pushing a third entry out of the pool.
        """
        source = self.tier_of(entry)
        charged = self.charged(entry)
        source.remove(entry.handle)
        try:
            for index in range(self.index[entry.tier]):
                try:
                    self.make_room(index, entry.nbytes, frozenset({entry.handle}))
                except CapacityError:
                    continue
                self.move(entry, index, ckv, counted_in_source=False)
                return entry.ckv
        except BaseException:
            self._recount_or_evict(entry, source, charged)
            raise
        source.add(entry.handle, charged)  # every make_room refused before changing anything
        self.counters["promotions_refused"] += 1  # normal when the faster tiers hold pinned data
        return ckv

    def _recount_or_evict(self, entry: PoolEntry, source: TierState, charged: int) -> None:
        """After a failed promotion: count ``entry`` in its tier again or, if spilled victims took its
        bytes before the failure, evict it (loudly) rather than exceed the budget."""
        if charged <= source.free_bytes:
            source.add(entry.handle, charged)
        else:
            self.remove(entry, EventKind.EVICTED, "promotion failed after its bytes were reused", counted=False)

    def _demote(self, entry: PoolEntry, index: int, exclude: frozenset[KVHandle]) -> None:
        """Spill ``entry`` from tier ``index`` to the next tier that can make room, else evict it."""
        for lower in range(index + 1, len(self.tiers)):
            shared = self._share(entry) if self.tiers[lower].device is None else None
            if shared is not None:  # the durable copy's bytes: no room needed, nothing written
                self.move(entry, lower, placed=(None, shared))
                return
            try:
                self.make_room(lower, entry.nbytes, exclude | {entry.handle})
            except CapacityError:
                continue
            self.move(entry, lower)
            return
        self.remove(entry, EventKind.EVICTED, f"no room below the {entry.tier} tier")

    def _squeeze(self, entry: PoolEntry, state: TierState, need: int, settings: RecompressConfig) -> None:
        """Re-prune ``entry`` a step at a time until ``state`` has ``need`` free bytes or the floor is hit."""
        for _ in range(math.ceil(settings.max_compression_ratio / settings.step_ratio) + 1):
            ratio = current_ratio(entry.meta)
            if state.free_bytes >= need or ratio >= settings.max_compression_ratio - 1e-9:
                return
            target = min(settings.max_compression_ratio, ratio + settings.step_ratio)
            pruned = self._pruner(self.load(entry), target)
            if pruned.nbytes >= entry.nbytes:
                self.counters["recompress_without_gain"] += 1
                return
            self.replace(entry, pruned, EventKind.RECOMPRESSED, f"ratio {ratio:.2f} -> {target:.2f} under pressure")

    # ---- moving data --------------------------------------------------------------------------

    def move(self, entry: PoolEntry, index: int, ckv: CompressedKV | None = None, *,
             counted_in_source: bool = True, placed: Placed | None = None) -> None:
        """Put ``entry``'s data into tier ``index`` (room already made; ``placed``: already there)
        and release its old place."""
        source, target = self.tier_of(entry), self.tiers[index]
        if placed is None:
            placed = self._place(target, entry, ckv if ckv is not None else self.load(entry))
        old_location = entry.location
        if counted_in_source:
            source.remove(entry.handle)
        self._commit(entry, target, placed)
        if old_location is not None:
            self.disk.delete(old_location)
        kind = EventKind.PROMOTED if index < self.index[source.tier] else EventKind.SPILLED
        self.record(kind, entry, from_tier=source.tier, previous_nbytes=entry.nbytes)

    def replace(self, entry: PoolEntry, ckv: CompressedKV, kind: EventKind, detail: str) -> None:
        """Swap ``entry``'s data for ``ckv`` in the same tier (the caller made room if it grows)."""
        state = self.tier_of(entry)
        placed = self._place(state, entry, ckv)
        old_location, previous = entry.location, entry.nbytes
        state.remove(entry.handle)
        entry.set_payload(ckv)
        self._commit(entry, state, placed)
        if old_location is not None:
            self.disk.delete(old_location)
        self.record(kind, entry, previous_nbytes=previous, detail=detail)

    def _place(self, state: TierState, entry: PoolEntry, ckv: CompressedKV) -> Placed:
        """Copy ``ckv`` into ``state``'s medium; no bookkeeping yet, so a failure here changes nothing."""
        if state.device is None:
            return None, self.disk.write(f"{entry.handle}.{entry.version + 1}", ckv)
        return ckv.to(state.device), None

    def _share(self, entry: PoolEntry) -> DiskLocation | None:
        """Hard-link ``entry``'s durable copy as its spill file if that copy holds exactly its bytes
        (kvpool.durable_store ``share``); None: write as usual (no durable store, no match, no link)."""
        if self.durable is None or entry.ckv is None:
            return None
        key = f"{entry.handle}.{entry.version + 1}"
        try:  # checksum_of reads each tensor where it lies: no copy of a device cache here
            location = self.durable.share(entry.session_id, entry.ckv,
                                          lambda source, manifest: self.disk.link(key, source, manifest))
        except OSError as exc:  # another filesystem, no hard links: the ordinary write is the fallback
            self.counters["spill_link_failed"] += 1
            log.warning("session=%s: could not link its durable copy as a spill file (%s); writing one",
                        entry.session_id, exc)
            return None
        if location is None:
            return None
        self.counters["spills_shared"] += 1
        return location

    @staticmethod
    def _commit(entry: PoolEntry, state: TierState, placed: Placed) -> None:
        entry.ckv, entry.location = placed
        entry.tier = state.tier
        entry.version += 1
        state.add(entry.handle, 0 if entry.location is not None and entry.location.shared else entry.nbytes)

    # ---- events and books ---------------------------------------------------------------------

    def record(self, kind: EventKind, entry: PoolEntry, **fields: Any) -> None:
        layer_nbytes = () if kind in REMOVALS else entry.layer_nbytes
        event = self._events.record(kind, entry.handle, entry.session_id, entry.tier, entry.nbytes,
                                    layer_nbytes=layer_nbytes, **fields)
        self._stats.observe(event)

    def usage(self) -> dict[str, dict[str, int]]:
        return {state.tier.value: state.usage(self.pinned_bytes(state)) for state in self.tiers}

    def audit(self) -> dict[str, int]:
        """Recount every tier from the data itself; RuntimeError ("kvpool bug") on any disagreement."""
        counted: dict[str, int] = {}
        for state in self.tiers:
            members = {handle for handle, entry in self.entries.items() if entry.tier is state.tier}
            held = sum(self.data_bytes(self.entries[handle]) for handle in members)
            if members != set(state.members) or held != state.held_bytes or held > state.budget_bytes:
                raise RuntimeError(f"kvpool bug: {state.tier} books say {state.held_bytes} bytes in "
                                   f"{len(state.members)} entries, data says {held} in {len(members)}")
            counted[state.tier.value] = held
        if set(self.policy.tracked()) != set(self.entries):
            raise RuntimeError("kvpool bug: the eviction policy tracks other handles than the pool holds")
        return counted

    @property
    def tier_names(self) -> tuple[Tier, ...]:
        return tuple(state.tier for state in self.tiers)
