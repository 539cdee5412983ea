"""kvpool: compressed KV caches and the pool that holds them.

Pure Python + torch: never imports ray, ray.serve, kvpress or transformers.
Public names: CompressedKV, LayerKV, KVMeta, PressSpec, pack/unpack/PackedKV, and the errors.
"""

from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV, layer_from_mask
from kvpool.errors import CacheLayoutError, CapacityError, ChecksumError, KVFleetError, PressSpecError
from kvpool.packing import PackedKV, checksum, pack, unpack, verify
from kvpool.press_spec import NO_PRESS, PressSpec

__all__ = [
    "CacheLayoutError", "CapacityError", "ChecksumError", "CompressedKV", "KVFleetError", "KVMeta", "LayerKV",
    "NO_PRESS", "PackedKV", "PressSpec", "PressSpecError", "checksum", "layer_from_mask", "pack", "unpack", "verify",
]
