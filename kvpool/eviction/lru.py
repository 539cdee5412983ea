"""LRU: evict the entry read (or stored) least recently."""

from __future__ import annotations

from kvpool.eviction.ordered import OrderedPolicy
from kvpool.handles import KVHandle


class LRUPolicy(OrderedPolicy):
    name = "lru"

    def on_insert(self, handle: KVHandle) -> None:
        self._order[handle] = None
        self._order.move_to_end(handle)

    def on_access(self, handle: KVHandle) -> None:
        if handle in self._order:
            self._order.move_to_end(handle)
