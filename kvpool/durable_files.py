"""The files of one persisted cache: their names, their errors, and reading them back verified.

kvpool.durable_store writes them (its module docstring gives the format); this module only reads,
so a replica can also read the files another replica of its node wrote (after that replica's
actors died: control_plane.recovery_queue).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kvpool.compressed_kv import CompressedKV
from kvpool.errors import ChecksumError, KVFleetError
from kvpool.packing import PackedKV, unpack


class PersistedCacheError(KVFleetError):
    """A persisted cache cannot be used. ``reason``: ``missing`` (no file, or not written yet),
    ``corrupt`` (checksum, size or manifest does not verify) or ``mismatch`` (another session,
    owner, press, model or dtype than expected). The caller re-prefills instead."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple:  # crosses Ray process boundaries: rebuilt with both arguments
        return (type(self), (self.reason, str(self)))


def file_stem(session_id: str) -> str:
    """The file name stem of ``session_id``'s files (a hash: safe whatever the id holds)."""
    return hashlib.blake2b(session_id.encode(), digest_size=16).hexdigest()


def read_persisted(root: Path, session_id: str, *, owner: str | None = None, press: dict[str, Any] | None = None,
                   model_id: str | None = None, dtype: str | None = None) -> CompressedKV:
    """The verified cache of ``session_id`` from the durable files under ``root`` (any DurableStore's
    root: a replica also reads another's on its node). Given expectations (None: not checked; an
    owner or press the file does not record is not checked either) must match. Raises
    PersistedCacheError. Files are renamed into place whole; a rewrite between reading the manifest
    and the buffer reads as ``corrupt``."""
    stem = Path(root) / file_stem(session_id)
    try:
        manifest = json.loads(stem.with_suffix(".json").read_bytes())
        raw = np.fromfile(stem.with_suffix(".kv"), dtype=np.uint8)
    except FileNotFoundError:
        raise PersistedCacheError("missing", f"no persisted cache for session {session_id!r}") from None
    except (OSError, ValueError) as exc:
        raise PersistedCacheError("corrupt", f"persisted cache of session {session_id!r}: {exc}") from exc
    expected = {"session_id": session_id, "owner": owner, "press": press, "model_id": model_id, "dtype": dtype}
    for field, want in expected.items():
        have = manifest.get(field)
        if want is not None and have is not None and have != want:
            raise PersistedCacheError("mismatch", f"persisted cache of session {session_id!r} has {field} "
                                                  f"{have!r}, expected {want!r}")
    try:
        return unpack(PackedKV(torch.from_numpy(raw), manifest["packed"]))
    except (ChecksumError, KeyError, TypeError, ValueError) as exc:
        raise PersistedCacheError("corrupt", f"persisted cache of session {session_id!r}: {exc}") from exc
