"""kvpool: compressed KV caches and the pool that holds them.

Pure Python + torch (+ pydantic, numpy; matplotlib lazily for the stats heatmap): never imports
ray, ray.serve, kvpress or transformers. The engine plugs in through ``Recompressor`` callables.

- ``CompressedKV`` / ``LayerKV`` / ``KVMeta``: one session's pruned cache; ``pack``/``unpack`` for transfer.
- ``KVPool`` + ``KVPoolConfig``: caches by ``KVHandle`` under byte budgets per tier (device, host,
  disk), eviction policies (``kvpool.eviction``), re-compression (``kvpool.recompress``), events
  (``kvpool.events``), access statistics (``kvpool.stats``, CLI ``kvpool.stats_cli``).
- ``CompressedPrefixIndex``: longest stored compressed prefix of a prompt.
- ``cast_dtype``: a cache in another model dtype (``KVPool(dtype=...)`` converts on ``put``).
- ``kvpool.durable_store``: session caches kept as checksummed files across restarts (write-behind).
- ``kvpool.codecs``: int8 / fp8 storage codecs; ``decode(ckv)`` before handing a cache to the engine.
- ``kvpool.synthetic``: random caches with real shapes, for tests, demos and benchmarks.
"""

from kvpool.cast import cast_dtype
from kvpool.codecs import codec_names, decode, encode
from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV, layer_from_mask
from kvpool.config import KVPoolConfig, RecompressConfig
from kvpool.entry import EntryInfo
from kvpool.errors import (CacheLayoutError, CapacityError, ChecksumError, CodecError, KVFleetError,
                           PoolConfigError, PressSpecError, QueryAwareCacheError, RecompressError,
                           UnknownHandleError, UnknownNameError)
from kvpool.events import EventKind, PoolEvent
from kvpool.eviction import EvictionPolicy, policy_names, register_policy
from kvpool.handles import KVHandle, SessionId, Tier
from kvpool.packing import PackedKV, checksum, pack, unpack, verify
from kvpool.pool import KVPool
from kvpool.prefix_index import CompressedPrefixIndex, PrefixHit, block_hashes
from kvpool.press_spec import NO_PRESS, PressSpec
from kvpool.recompress import (RECOMPRESS_SCORERS, Recompressor, keydiff_recompressor, knorm_recompressor,
                               recompressor_for)

__all__ = [
    "CacheLayoutError", "CapacityError", "ChecksumError", "CodecError", "CompressedKV", "CompressedPrefixIndex",
    "EntryInfo", "EventKind", "EvictionPolicy", "KVFleetError", "KVHandle", "KVMeta", "KVPool", "KVPoolConfig",
    "LayerKV", "NO_PRESS", "PackedKV", "PoolConfigError", "PoolEvent", "PrefixHit", "PressSpec", "PressSpecError",
    "QueryAwareCacheError", "RECOMPRESS_SCORERS", "RecompressConfig", "RecompressError", "Recompressor", "SessionId",
    "Tier", "UnknownHandleError", "UnknownNameError", "block_hashes", "cast_dtype", "checksum", "codec_names", "decode",
    "encode", "keydiff_recompressor", "knorm_recompressor", "layer_from_mask", "pack", "policy_names",
    "recompressor_for", "register_policy", "unpack", "verify",
]
