"""Fixtures for kvpool tests: synthetic caches (4 layers, 3 KV heads, head_dim 64) and pools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kvpool import CompressedKV, KVPool, KVPoolConfig
from kvpool.synthetic import synthetic_kv
from kvpool_helpers import EventLog

LAYERS, HEADS, HEAD_DIM = 4, 3, 64


@pytest.fixture
def make_kv() -> Callable[..., CompressedKV]:
    """``make_kv(tokens=64, ratio=0.0, ragged=False, seed=0, dtype=float32, **more)`` -> a random cache."""

    def factory(*, tokens: int = 64, ratio: float = 0.0, ragged: bool = False, seed: int = 0,
                dtype: torch.dtype = torch.float32, **more) -> CompressedKV:
        return synthetic_kv(num_layers=LAYERS, num_kv_heads=HEADS, head_dim=HEAD_DIM, original_tokens=tokens,
                            compression_ratio=ratio, ragged=ragged, dtype=dtype, seed=seed, **more)

    return factory


@pytest.fixture
def entry_bytes(make_kv) -> int:
    """Bytes of one default cache (64 tokens, float32): 4 * 2 * 3 * 64 * 64 * 4 = 196608."""
    return make_kv().nbytes


@pytest.fixture
def make_pool(tmp_path: Path) -> Callable[..., KVPool]:
    """``make_pool(host=..., disk=None|bytes, **config)``; pools are closed after the test."""
    pools: list[KVPool] = []

    def factory(*, host: int, disk: int | None = None, recompressor=None, **config) -> KVPool:
        if disk is not None:
            config.update(disk_dir=tmp_path / f"disk{len(pools)}", disk_budget_bytes=disk)
        pool = KVPool(KVPoolConfig(host_budget_bytes=host, **config), recompressor=recompressor)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close()


@pytest.fixture
def event_log() -> Callable[[KVPool], EventLog]:
    return EventLog
