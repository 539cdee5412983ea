"""FIFO: evict the entry stored first; reads don't change the order."""

from __future__ import annotations

from kvpool.eviction.ordered import OrderedPolicy
from kvpool.handles import KVHandle


class FIFOPolicy(OrderedPolicy):
    name = "fifo"

    def on_insert(self, handle: KVHandle) -> None:
        self._order.setdefault(handle, None)

    def on_access(self, handle: KVHandle) -> None:
        """Reads don't matter to FIFO."""
