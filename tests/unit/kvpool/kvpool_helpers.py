"""Helpers shared by the kvpool tests (imported by name: this folder is on sys.path under pytest)."""

from __future__ import annotations

import torch

from kvpool import CompressedKV, KVPool, PoolEvent


class EventLog:
    """Collects every event a pool delivers."""

    def __init__(self, pool: KVPool) -> None:
        self.events: list[PoolEvent] = []
        pool.subscribe(self.events.append)

    def kinds(self, handle=None) -> list[str]:
        return [e.kind.value for e in self.events if handle is None or e.handle == handle]


def assert_identical(a: CompressedKV, b: CompressedKV) -> None:
    """Bit-identical tensors (compared as raw bytes), same layouts and metadata."""
    assert a.meta == b.meta
    assert len(a.layers) == len(b.layers)
    for left, right in zip(a.layers, b.layers):
        assert left.head_lengths == right.head_lengths
        assert set(left.scales) == set(right.scales)
        pairs = [(left.keys, right.keys), (left.values, right.values)]
        pairs += [(left.scales[name], right.scales[name]) for name in left.scales]
        for x, y in pairs:
            assert x.dtype == y.dtype and x.shape == y.shape
            assert torch.equal(x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8))
