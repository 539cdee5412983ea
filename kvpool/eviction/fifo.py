"""FIFO: evict the entry stored first; reads don't change the order."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from kvpool.eviction.base import EvictionPolicy
from kvpool.handles import KVHandle


class FIFOPolicy(EvictionPolicy):
    name = "fifo"

    def __init__(self) -> None:
        self._order: OrderedDict[KVHandle, None] = OrderedDict()  # first stored first

    def on_insert(self, handle: KVHandle) -> None:
        self._order.setdefault(handle, None)

    def on_access(self, handle: KVHandle) -> None:
        """Reads don't matter to FIFO."""

    def on_remove(self, handle: KVHandle) -> None:
        self._order.pop(handle, None)

    def rank_victims(self, candidates: Collection[KVHandle]) -> list[KVHandle]:
        wanted = set(candidates)
        return [handle for handle in self._order if handle in wanted]

    def tracked(self) -> Collection[KVHandle]:
        return self._order.keys()
