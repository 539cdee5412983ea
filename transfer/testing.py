"""Helpers for tests and benchmarks of transfers: endpoint actors, synthetic sessions, comparisons.

``EndpointActor`` is a Ray actor mixing in TransferEndpoint with the default hooks (offer/take)
plus a few test conveniences; ``InProcessEndpoint`` is the same without Ray. ``EMBEDDED_SHAPE``
is the cache layout of the embedded default model (30 layers, 3 KV heads, head_dim 64).
"""

from __future__ import annotations

import os
from typing import Any

import ray
import torch

from kvpool.compressed_kv import CompressedKV
from kvpool.packing import PackedKV, pack, unpack
from kvpool.synthetic import synthetic_kv
from transfer.endpoint import TransferEndpoint, transfer_actor

EMBEDDED_SHAPE = {"num_layers": 30, "num_kv_heads": 3, "head_dim": 64}
BYTES_PER_TOKEN_F32 = 2 * 30 * 3 * 64 * 4  # keys + values, all layers, float32


def synthetic_session(original_tokens: int = 512, *, seed: int = 0, ragged: bool = False,
                      compression_ratio: float = 0.5, dtype: torch.dtype = torch.float32,
                      model_id: str = "synthetic-model", device: str = "cpu") -> CompressedKV:
    """A pruned cache shaped like the embedded model's (random numbers, real layout) on ``device``."""
    return synthetic_kv(**EMBEDDED_SHAPE, original_tokens=original_tokens, compression_ratio=compression_ratio,
                        ragged=ragged, dtype=dtype, seed=seed, model_id=model_id, device=device)


def tokens_for_bytes(nbytes: int) -> int:
    """Context length (uncompressed, float32) whose cache holds at least ``nbytes``."""
    return -(-nbytes // BYTES_PER_TOKEN_F32)


def same_cache(a: CompressedKV, b: CompressedKV) -> bool:
    """True if metadata and every tensor (keys, values, scales, head lengths) are identical."""
    if a.meta != b.meta or len(a.layers) != len(b.layers):
        return False
    for left, right in zip(a.layers, b.layers):
        if left.head_lengths != right.head_lengths or left.scales.keys() != right.scales.keys():
            return False
        tensors = [(left.keys, right.keys), (left.values, right.values),
                   *((left.scales[k], right.scales[k]) for k in left.scales)]
        if not all(x.dtype == y.dtype and torch.equal(x.cpu(), y.cpu()) for x, y in tensors):
            return False
    return True


class InProcessEndpoint(TransferEndpoint):
    """A TransferEndpoint without Ray (tests of callers, single-process tools)."""


@transfer_actor(num_cpus=0)
class EndpointActor(TransferEndpoint):
    """A Ray actor endpoint with the default offer/take hooks, for tests and benchmarks.

    ``sink=True`` makes the import hook only count bytes (benchmarks: measures the transfer, not
    the copy a real pool makes).
    """

    def __init__(self, sink: bool = False) -> None:
        self._sink = sink
        self._sunk_bytes = 0

    def transfer_import(self, key: str, packed: PackedKV) -> None:
        if self._sink:
            self._sunk_bytes += packed.nbytes
            return
        super().transfer_import(key, packed)

    def offer(self, key: str, packed: PackedKV) -> int:
        self.transfer_offer(key, packed)
        return packed.nbytes

    def offer_synthetic(self, key: str, **kwargs: Any) -> int:
        """Build ``synthetic_session(**kwargs)`` here (no driver round trip) and offer it."""
        packed = pack(synthetic_session(**kwargs))
        self.transfer_offer(key, packed)
        return packed.nbytes

    def withdraw(self, key: str) -> bool:
        """Stop offering ``key`` (frees the pack)."""
        with self._transfer_state().lock:
            return self._transfer_state().outbox.pop(key, None) is not None

    def take(self, key: str) -> PackedKV | None:
        return self.transfer_take(key)

    def holds(self, key: str) -> bool:
        return key in self._transfer_state().inbox

    def received_equals_synthetic(self, key: str, **kwargs: Any) -> bool:
        """Compare what arrived under ``key`` with ``synthetic_session(**kwargs)`` built here."""
        packed = self.transfer_take(key)
        return packed is not None and same_cache(unpack(packed), synthetic_session(**kwargs))

    def received_device(self, key: str) -> str | None:
        """Device of the buffer that arrived under ``key`` (without taking it)."""
        packed = self._transfer_state().inbox.get(key)
        return None if packed is None else str(packed.buffer.device)

    def sunk_bytes(self) -> int:
        return self._sunk_bytes

    def where(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "pid": os.getpid()}
