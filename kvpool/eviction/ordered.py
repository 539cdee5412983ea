"""Base of policies that keep their entries in one order (LRU, FIFO): victims are taken from the front."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from kvpool.eviction.base import EvictionPolicy
from kvpool.handles import KVHandle


class OrderedPolicy(EvictionPolicy):
    """Subclasses decide how inserts and accesses move a handle; the front is evicted first."""

    def __init__(self) -> None:
        self._order: OrderedDict[KVHandle, None] = OrderedDict()

    def on_remove(self, handle: KVHandle) -> None:
        self._order.pop(handle, None)

    def rank_victims(self, candidates: Collection[KVHandle]) -> list[KVHandle]:
        wanted = set(candidates)
        return [handle for handle in self._order if handle in wanted]

    def tracked(self) -> Collection[KVHandle]:
        return self._order.keys()
