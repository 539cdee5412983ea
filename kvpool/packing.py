"""Pack a CompressedKV into one contiguous byte buffer + a JSON-able manifest, and back.

The buffer is what transfer backends move (one registration, one send). The manifest carries
the metadata, the tensor table (name, dtype, shape, offset, nbytes) and a checksum of the
buffer; ``unpack`` verifies both before building tensors, so corrupted bytes never become a cache.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch

from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV
from kvpool.errors import ChecksumError

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PackedKV:
    """``buffer``: 1-D uint8 tensor (CPU or CUDA). ``manifest``: JSON-able dict."""

    buffer: torch.Tensor
    manifest: dict[str, Any]

    @property
    def nbytes(self) -> int:
        return self.buffer.numel()


def checksum(buffer: torch.Tensor) -> int:
    """CRC32 of a uint8 buffer (copied to host if it lives on an accelerator)."""
    host = buffer if buffer.device.type == "cpu" else buffer.cpu()
    return zlib.crc32(memoryview(host.contiguous().numpy()))


def checksum_of(ckv: CompressedKV) -> int:
    """The checksum ``pack(ckv)`` would record, computed tensor by tensor without building the buffer
    (to tell whether a packed file already holds exactly this cache: kvpool.durable_store.share)."""
    crc = 0
    for _, tensor in _tensor_entries(ckv):
        raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
        crc = zlib.crc32(memoryview((raw if raw.device.type == "cpu" else raw.cpu()).numpy()), crc)
    return crc


def _tensor_entries(ckv: CompressedKV) -> list[tuple[str, torch.Tensor]]:
    entries = []
    for i, layer in enumerate(ckv.layers):
        entries.append((f"{i}.keys", layer.keys))
        entries.append((f"{i}.values", layer.values))
        for name, scale in sorted(layer.scales.items()):
            entries.append((f"{i}.scale.{name}", scale))
    return entries


def pack(ckv: CompressedKV) -> PackedKV:
    """Copy every tensor of ``ckv`` into one contiguous uint8 buffer on the cache's device."""
    entries = _tensor_entries(ckv)
    total = sum(t.numel() * t.element_size() for _, t in entries)
    buffer = torch.empty(total, dtype=torch.uint8, device=ckv.device)
    table, offset = [], 0
    for name, tensor in entries:
        n = tensor.numel() * tensor.element_size()
        buffer[offset : offset + n] = tensor.contiguous().reshape(-1).view(torch.uint8)
        table.append({"name": name, "dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
                      "offset": offset, "nbytes": n})
        offset += n
    manifest = {
        "version": MANIFEST_VERSION,
        "meta": ckv.meta.to_json(),
        "head_lengths": [list(layer.head_lengths) if layer.head_lengths else None for layer in ckv.layers],
        "tensors": table,
        "nbytes": total,
        "checksum": checksum(buffer),
    }
    return PackedKV(buffer, manifest)


def verify(packed: PackedKV) -> None:
    """Raise ChecksumError unless the buffer matches the manifest's size and checksum."""
    manifest = packed.manifest
    if manifest.get("version") != MANIFEST_VERSION:
        raise ChecksumError(f"manifest version {manifest.get('version')!r} is not {MANIFEST_VERSION}")
    if packed.buffer.dtype != torch.uint8 or packed.buffer.dim() != 1:
        raise ChecksumError("packed buffer must be a 1-D uint8 tensor")
    if packed.nbytes != manifest["nbytes"]:
        raise ChecksumError(f"buffer holds {packed.nbytes} bytes, manifest says {manifest['nbytes']}")
    actual = checksum(packed.buffer)
    if actual != manifest["checksum"]:
        raise ChecksumError(f"checksum mismatch: buffer {actual:#010x}, manifest {manifest['checksum']:#010x}; "
                            "the data was corrupted in transit")


def unpack(packed: PackedKV, device: str | torch.device | None = None) -> CompressedKV:
    """Verify ``packed`` and rebuild the CompressedKV (tensors are views of a private copy)."""
    verify(packed)
    manifest = packed.manifest
    buffer = packed.buffer if device is None else packed.buffer.to(device)
    buffer = buffer.clone()  # the caller may reuse its buffer (e.g. registered transfer memory)
    tensors: dict[str, torch.Tensor] = {}
    for entry in manifest["tensors"]:
        dtype = getattr(torch, entry["dtype"])
        raw = buffer[entry["offset"] : entry["offset"] + entry["nbytes"]]
        tensors[entry["name"]] = raw.view(dtype).reshape(entry["shape"])
    meta = KVMeta.from_json(manifest["meta"])
    layers = []
    for i, head_lengths in enumerate(manifest["head_lengths"]):
        prefix = f"{i}.scale."
        scales = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
        layers.append(LayerKV(tensors[f"{i}.keys"], tensors[f"{i}.values"],
                              tuple(head_lengths) if head_lengths else None, scales))
    return CompressedKV(tuple(layers), meta)
