"""LFU: evict the entry read least often; ties go to the one used least recently.

A stored entry starts with one use. Counts survive moves between tiers (one policy per pool).
Ranking sorts the candidates: O(n log n) in the tier's entries, fine for the hundreds to
thousands of sessions a replica holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection

from kvpool.eviction.base import EvictionPolicy
from kvpool.handles import KVHandle


class LFUPolicy(EvictionPolicy):
    name = "lfu"

    def __init__(self) -> None:
        self._uses: dict[KVHandle, int] = {}
        self._last_tick: dict[KVHandle, int] = {}
        self._clock = itertools.count()

    def on_insert(self, handle: KVHandle) -> None:
        self._uses[handle] = 1
        self._last_tick[handle] = next(self._clock)

    def on_access(self, handle: KVHandle) -> None:
        if handle in self._uses:
            self._uses[handle] += 1
            self._last_tick[handle] = next(self._clock)

    def on_remove(self, handle: KVHandle) -> None:
        self._uses.pop(handle, None)
        self._last_tick.pop(handle, None)

    def rank_victims(self, candidates: Collection[KVHandle]) -> list[KVHandle]:
        known = [handle for handle in candidates if handle in self._uses]
        return sorted(known, key=lambda handle: (self._uses[handle], self._last_tick[handle]))

    def tracked(self) -> Collection[KVHandle]:
        return self._uses.keys()
