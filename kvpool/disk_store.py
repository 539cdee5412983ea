"""DiskStore: one packed cache per pair of files in a directory (``<key>.kv`` buffer, ``<key>.json`` manifest).

The buffer file holds exactly ``CompressedKV.nbytes`` bytes (kvpool.packing's contiguous buffer);
the manifest carries metadata and the CRC32 that ``read`` verifies, so a torn or corrupted file
raises ChecksumError instead of becoming a cache. Writes go to a temporary name and are renamed
into place, so a reader never sees half a file. Keys are chosen by the caller and never reused
(the pool uses ``<handle>.<version>``), so a reader of an old version is never overwritten.

A spilled cache that the durable store already holds byte for byte is not written again: ``link``
hard-links the durable buffer file under the key (same inode, no bytes copied) and writes only the
small manifest. Such a location is ``shared``: its bytes are counted by the durable budget, not a
second time by the disk tier's; deleting it removes the link, never the durable copy, and a later
rewrite or deletion of the durable copy (a rename or unlink of *its* name) leaves the link intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kvpool.compressed_kv import CompressedKV
from kvpool.packing import PackedKV, pack, unpack
from kvpool.safe_paths import safe_key


@dataclass(frozen=True)
class DiskLocation:
    """Where one cache lives on disk and how many buffer bytes it holds. ``shared``: the buffer is a
    hard link to the durable copy's (kvpool.durable_store), whose budget counts those bytes."""

    buffer_path: Path
    manifest_path: Path
    nbytes: int
    shared: bool = False


class DiskStore:
    """Reads and writes packed caches under ``root`` (created if missing). Thread-safe: no shared state."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, key: str, ckv: CompressedKV) -> DiskLocation:
        """Pack ``ckv`` (from any device) and write it under ``key``. Raises OSError on I/O failure,
        UnsafeNameError if ``key`` is not one plain file-name component (kvpool.safe_paths)."""
        safe_key(key)
        packed = pack(ckv.to("cpu"))
        location = DiskLocation(self.root / f"{key}.kv", self.root / f"{key}.json", packed.nbytes)
        _write_atomic(location.buffer_path, memoryview(packed.buffer.numpy()))
        _write_atomic(location.manifest_path, json.dumps(packed.manifest).encode())
        return location

    def link(self, key: str, source: Path, manifest: dict) -> DiskLocation:
        """Hard-link ``source`` (a packed buffer file, verified by the caller against ``manifest``)
        under ``key`` and write ``manifest`` beside it: a spill that copies no cache bytes. Raises
        OSError if the link cannot be made (another filesystem, no hard links): the caller writes."""
        safe_key(key)
        location = DiskLocation(self.root / f"{key}.kv", self.root / f"{key}.json", int(manifest["nbytes"]),
                                shared=True)
        location.buffer_path.unlink(missing_ok=True)
        os.link(source, location.buffer_path)
        try:
            _write_atomic(location.manifest_path, json.dumps(manifest).encode())
        except OSError:
            location.buffer_path.unlink(missing_ok=True)
            raise
        return location

    def read(self, location: DiskLocation, device: str | torch.device = "cpu") -> CompressedKV:
        """Read and verify a cache. Raises FileNotFoundError if deleted, ChecksumError if corrupted."""
        manifest = json.loads(location.manifest_path.read_bytes())
        raw = np.fromfile(location.buffer_path, dtype=np.uint8)
        return unpack(PackedKV(torch.from_numpy(raw), manifest), device=device)

    def delete(self, location: DiskLocation) -> None:
        """Remove both files; already-missing files are fine (deleting is idempotent)."""
        for path in (location.buffer_path, location.manifest_path):
            path.unlink(missing_ok=True)

    def held_bytes(self, location: DiskLocation) -> int:
        """Size of the buffer file as the filesystem reports it (for audits)."""
        return location.buffer_path.stat().st_size


def _write_atomic(path: Path, data: memoryview | bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
