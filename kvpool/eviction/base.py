"""The eviction-policy interface: policies rank victims, the pool moves them.

One policy instance serves the whole pool (all tiers), so what it knows about an entry (recency,
frequency, age) survives the entry's moves between tiers. The pool tells it about inserts,
accesses and removals, and asks it to rank the candidates of one tier when that tier needs room;
the pool then spills, re-compresses or evicts in that order. Policies never touch tensors.

Calls come with the pool's lock held: implementations need no locking of their own and must
not call back into the pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import ClassVar

from kvpool.handles import KVHandle


class EvictionPolicy(ABC):
    """Ranks which entries should leave a tier first."""

    name: ClassVar[str]

    @abstractmethod
    def on_insert(self, handle: KVHandle) -> None:
        """``handle`` was stored in the pool (first time)."""

    @abstractmethod
    def on_access(self, handle: KVHandle) -> None:
        """``handle`` was read (a hit)."""

    @abstractmethod
    def on_remove(self, handle: KVHandle) -> None:
        """``handle`` left the pool (freed or evicted); forget it. Unknown handles are ignored."""

    @abstractmethod
    def rank_victims(self, candidates: Collection[KVHandle]) -> list[KVHandle]:
        """Return ``candidates`` ordered most-evictable first (every candidate exactly once).

        ``candidates`` are the unpinned entries of the tier that needs room.
        """

    @abstractmethod
    def tracked(self) -> Collection[KVHandle]:
        """Handles the policy currently tracks (for audits and tests)."""
