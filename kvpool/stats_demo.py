"""A small synthetic workload on a real KVPool (host + disk tiers), to show the statistics tooling."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from kvpool.config import KVPoolConfig, RecompressConfig
from kvpool.errors import UnknownHandleError
from kvpool.handles import SessionId
from kvpool.pool import KVPool
from kvpool.recompress import knorm_recompressor
from kvpool.synthetic import synthetic_kv

DEMO_SHAPE = {"num_layers": 12, "num_kv_heads": 3, "head_dim": 32}


def run_demo(sessions: int = 16, operations: int = 400, seed: int = 0) -> dict[str, Any]:
    """Store ``sessions`` caches (dense and ragged, ratios 0-0.75, every third one pyramid-shaped)
    in a pool that holds about a sixth of them in host memory and a sixth on disk, read them with a
    skewed (Zipf-like) pattern, quantize a few, pin one, and return the pool's stats snapshot.
    Deterministic for a given seed; leaves no files behind."""
    rng = random.Random(seed)
    one = synthetic_kv(original_tokens=256, **DEMO_SHAPE).nbytes
    with tempfile.TemporaryDirectory(prefix="kvpool-demo-") as disk_dir:
        config = KVPoolConfig(host_budget_bytes=sessions * one // 6, disk_dir=Path(disk_dir),
                              disk_budget_bytes=sessions * one // 6, eviction_policy="lru",
                              recompress=RecompressConfig(enabled=True, step_ratio=0.25, max_compression_ratio=0.75))
        with KVPool(config, recompressor=knorm_recompressor) as pool:
            handles = []
            for i in range(sessions):
                ratio = rng.choice([0.0, 0.25, 0.5, 0.75])
                layers = DEMO_SHAPE["num_layers"]
                pyramid = [ratio + (0.9 - ratio) * layer / layers for layer in range(layers)]
                ckv = synthetic_kv(original_tokens=256, compression_ratio=ratio, ragged=i % 2 == 1,
                                   layer_compression_ratios=pyramid if i % 3 == 0 else None,
                                   seed=seed * 1000 + i, **DEMO_SHAPE)
                handles.append(pool.put(ckv, SessionId(f"session-{i:02d}"), pin=i == 0))
            weights = [1.0 / (rank + 1) for rank in range(sessions)]
            for _ in range(operations):
                handle = rng.choices(handles, weights)[0]
                try:
                    if rng.random() < 0.05:
                        pool.quantize(handle, "int8")
                    else:
                        pool.get(handle)
                except UnknownHandleError:
                    continue  # evicted under pressure: the stats count it as a miss
            return pool.stats_snapshot()
