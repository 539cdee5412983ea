"""One stored cache inside a KVPool (``PoolEntry``, private, mutable under the pool's lock) and its
public read-only view (``EntryInfo``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvpool.compressed_kv import CompressedKV, KVMeta
from kvpool.disk_store import DiskLocation
from kvpool.handles import KVHandle, SessionId, Tier


@dataclass
class PoolEntry:
    """Exactly one of ``ckv`` (memory tiers) and ``location`` (disk) is set. ``version`` grows with
    every change of the stored data or its place, so work done outside the lock can tell whether
    what it read is still current."""

    handle: KVHandle
    session_id: SessionId
    tier: Tier
    meta: KVMeta
    nbytes: int
    layer_nbytes: tuple[int, ...]
    pinned: bool = False
    ckv: CompressedKV | None = None
    location: DiskLocation | None = None
    version: int = 0

    @classmethod
    def create(cls, handle: KVHandle, session_id: SessionId, ckv: CompressedKV, pinned: bool) -> "PoolEntry":
        """A not-yet-placed entry for ``ckv`` (its ``tier`` is set when the store places it)."""
        entry = cls(handle, session_id, Tier.HOST, ckv.meta, 0, (), pinned=pinned)
        entry.set_payload(ckv)
        return entry

    def set_payload(self, ckv: CompressedKV) -> None:
        """Adopt ``ckv``'s metadata and sizes (the caller places the tensors and bumps ``version``)."""
        self.meta = ckv.meta
        self.nbytes = ckv.nbytes
        self.layer_nbytes = tuple(layer.nbytes() for layer in ckv.layers)

    def info(self) -> "EntryInfo":
        return EntryInfo(self.handle, self.session_id, self.tier, self.nbytes, self.pinned, self.meta)


@dataclass(frozen=True)
class EntryInfo:
    """What the pool holds for one handle, without touching its tensors."""

    handle: KVHandle
    session_id: SessionId
    tier: Tier
    nbytes: int
    pinned: bool
    meta: KVMeta

    @property
    def codec(self) -> str:
        return self.meta.codec

    def to_json(self) -> dict[str, Any]:
        return {"handle": self.handle.id, "session_id": self.session_id, "tier": self.tier.value,
                "nbytes": self.nbytes, "pinned": self.pinned, "codec": self.meta.codec,
                "model_id": self.meta.model_id, "press": self.meta.press,
                "original_tokens": self.meta.original_tokens, "kept_tokens": self.meta.kept_tokens}
