"""PrefixLocator: which replicas hold (or were sent) a prompt prefix, by chained block hash.

Because the hashes are chained (block i's hash covers blocks 0..i), the deepest block of a prompt
found here is the longest known prefix, and one probe per block finds it: O(prompt blocks).
Bounded: at most ``max_blocks`` hashes, least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from control_plane.ids import ReplicaId


class PrefixLocator:
    def __init__(self, max_blocks: int = 200_000) -> None:
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {max_blocks}")
        self.max_blocks = max_blocks
        self._holders: OrderedDict[bytes, set[ReplicaId]] = OrderedDict()

    def record(self, block_hashes: Sequence[bytes], replica_id: ReplicaId) -> None:
        """``replica_id`` holds (or is about to hold) the prefix these hashes describe."""
        for block in block_hashes:
            self._holders.setdefault(block, set()).add(replica_id)
            self._holders.move_to_end(block)
        while len(self._holders) > self.max_blocks:
            self._holders.popitem(last=False)

    def longest(self, block_hashes: Sequence[bytes]) -> dict[ReplicaId, int]:
        """replica -> number of leading blocks it holds, for the replicas holding the most."""
        best: dict[ReplicaId, int] = {}
        for depth, block in enumerate(block_hashes, start=1):
            holders = self._holders.get(block)
            if holders:
                self._holders.move_to_end(block)
                best = {replica: depth for replica in holders}
        return best

    def forget_replica(self, replica_id: ReplicaId) -> None:
        for block in [b for b, holders in self._holders.items() if replica_id in holders]:
            self._holders[block].discard(replica_id)
            if not self._holders[block]:
                del self._holders[block]

    def __len__(self) -> int:
        return len(self._holders)
