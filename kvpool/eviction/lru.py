"""LRU: evict the entry read (or stored) least recently."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from kvpool.eviction.base import EvictionPolicy
from kvpool.handles import KVHandle


class LRUPolicy(EvictionPolicy):
    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[KVHandle, None] = OrderedDict()  # oldest first

    def on_insert(self, handle: KVHandle) -> None:
        self._order[handle] = None
        self._order.move_to_end(handle)

    def on_access(self, handle: KVHandle) -> None:
        if handle in self._order:
            self._order.move_to_end(handle)

    def on_remove(self, handle: KVHandle) -> None:
        self._order.pop(handle, None)

    def rank_victims(self, candidates: Collection[KVHandle]) -> list[KVHandle]:
        wanted = set(candidates)
        return [handle for handle in self._order if handle in wanted]

    def tracked(self) -> Collection[KVHandle]:
        return self._order.keys()
