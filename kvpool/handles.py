"""Identifiers of the pool: ``KVHandle`` (one stored cache), ``SessionId`` and the storage ``Tier``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from typing import NewType

SessionId = NewType("SessionId", str)
"""The session a stored cache belongs to (the control plane's session id)."""


@dataclass(frozen=True, order=True)
class KVHandle:
    """Opaque, hashable name of one entry in a KVPool. Compare and hash it; don't parse ``id``."""

    id: str

    @classmethod
    def new(cls) -> "KVHandle":
        return cls(uuid.uuid4().hex)

    def __str__(self) -> str:
        return self.id


class Tier(str, Enum):
    """Where an entry's tensors live, fastest first: accelerator memory, host memory, a disk directory."""

    DEVICE = "device"
    HOST = "host"
    DISK = "disk"

    def __str__(self) -> str:
        return self.value
