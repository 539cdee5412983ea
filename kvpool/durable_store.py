"""DurableStore: every session's compressed cache also kept as files on the replica's node.

A restart or a dead actor loses the pool's memory, not these files: the control plane reads a
session back from them instead of re-prefilling it (docs/durability.md). Per session, under
``root``: ``<stem>.kv`` (kvpool.packing's contiguous buffer) and ``<stem>.json``, the manifest::

    {"format": 1, "session_id", "owner", "press", "model_id", "dtype", "nbytes", "written_s",
     "packed": <kvpool.packing manifest: meta, tensor table, CRC32 of the buffer>}

``<stem>`` is a hash of the session id (ids come from clients; a hash is always a safe file name).
``owner`` / ``press`` are None when the writer did not know them (a migration import).

Write-behind: ``persist`` only records the cache as pending and returns; one writer thread packs
and writes it (buffer first, manifest last, each to a temporary name renamed into place, so a
manifest only ever names a complete buffer). A later ``persist`` of the same session replaces a
pending one; ``delete`` drops the pending write and the files, after any write in progress.

Budget: the bytes of buffer files held stay within ``budget_bytes``. A cache that does not fit, or
a write that fails (disk full, read-only volume), is not persisted: its older file is deleted too
(it would hold stale data), a warning names the session, ``counters`` counts it, and after a
restart that session is recomputed - never lost. Thread-safe.

Spills share these files: when the pool spills a session's cache to its disk tier, ``share`` checks
that the file on disk holds exactly that cache (no pending rewrite, same metadata - model, dtype,
press, tokens kept, codec -, the checksum of the cache in memory equals the file's, and the file's
bytes verify) and lets the disk tier hard-link it instead of writing a second copy (counted:
``spill_shared``; else ``spill_not_shared_<why>`` and the disk tier writes its own file).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from kvpool.compressed_kv import CompressedKV
from kvpool.errors import ChecksumError
from kvpool.durable_files import file_stem, read_persisted
from kvpool.packing import PackedKV, checksum_of, pack, verify

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
T = TypeVar("T")


@dataclass(frozen=True)
class PersistedInfo:
    """What the manifest says about one persisted cache (the listing the control plane reads)."""

    session_id: str
    nbytes: int
    owner: str | None
    press: dict[str, Any] | None
    model_id: str
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"nbytes": self.nbytes, "owner": self.owner, "press": self.press, "model_id": self.model_id,
                "dtype": self.dtype}


@dataclass(frozen=True)
class _Pending:
    ckv: CompressedKV
    owner: str | None
    press: dict[str, Any] | None


class DurableStore:
    """Persisted caches under ``root`` (created if missing) within ``budget_bytes``.

    ``background``: False writes inside ``persist`` (tests); True uses the writer thread.
    """

    def __init__(self, root: Path, budget_bytes: int, *, background: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()          # index, pending, counters
        self._io = threading.Lock()            # one write or delete at a time, in order
        self._wake = threading.Condition(self._lock)
        self._pending: dict[str, _Pending] = {}
        self._index: dict[str, PersistedInfo] = self._scan()
        self._closed = False
        self._writer = None
        if background:
            self._writer = threading.Thread(target=self._write_loop, name="kv-durable-writer", daemon=True)
            self._writer.start()

    # ---- what is there ------------------------------------------------------------------------

    def _scan(self) -> dict[str, PersistedInfo]:
        """Index the manifests left by an earlier process; drop temporaries and buffers without one."""
        index: dict[str, PersistedInfo] = {}
        for path in self.root.glob("*.tmp"):
            path.unlink(missing_ok=True)
        for manifest_path in sorted(self.root.glob("*.json")):
            buffer_path = manifest_path.with_suffix(".kv")
            try:
                info = _info(json.loads(manifest_path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("durable store %s: unreadable manifest %s (%s); the session will be recomputed",
                            self.root, manifest_path.name, exc)
                self.counters["unreadable_manifests"] += 1
                continue
            if buffer_path.exists() and file_stem(info.session_id) == manifest_path.stem:
                index[info.session_id] = info
        known = {file_stem(s) for s in index}
        for buffer_path in self.root.glob("*.kv"):
            if buffer_path.stem not in known and not buffer_path.with_suffix(".json").exists():
                buffer_path.unlink(missing_ok=True)  # torn write: the manifest never landed
        return index

    def listing(self) -> dict[str, dict[str, Any]]:
        """``{session_id: PersistedInfo.to_json()}`` of every cache on disk now (pending writes excluded)."""
        with self._lock:
            return {s: info.to_json() for s, info in self._index.items()}

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(info.nbytes for info in self._index.values())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"dir": str(self.root), "files": len(self._index), "pending": len(self._pending),
                    "held_bytes": sum(i.nbytes for i in self._index.values()), "budget_bytes": self.budget_bytes,
                    "counters": dict(self.counters)}

    # ---- writing --------------------------------------------------------------------------------

    def persist(self, session_id: str, ckv: CompressedKV, *, owner: str | None = None,
                press: dict[str, Any] | None = None) -> None:
        """Schedule ``ckv`` to be written as ``session_id``'s file (replacing a pending or older one)."""
        with self._lock:
            self._pending[session_id] = _Pending(ckv, owner, press)
            self._wake.notify()
        if self._writer is None:
            self.flush()

    def flush(self) -> None:
        """Write every pending cache now, in this thread."""
        while self._write_one():
            pass

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending:
                    return
            self._write_one()

    def _write_one(self) -> bool:
        with self._io:
            with self._lock:
                if not self._pending:
                    return False
                session_id = next(iter(self._pending))
                item = self._pending.pop(session_id)
            try:
                self._write(session_id, item)
            except Exception as exc:  # the writer thread must survive one bad cache; logged and counted
                self._give_up(session_id, "persist_failed_error", f"{type(exc).__name__}: {exc}")
            return True

    def _write(self, session_id: str, item: _Pending) -> None:
        """Pack and write one cache (holding ``_io``); a refusal or failure leaves no file at all."""
        packed = pack(item.ckv.to("cpu"))
        with self._lock:
            others = sum(i.nbytes for s, i in self._index.items() if s != session_id)
        if others + packed.nbytes > self.budget_bytes:
            self._give_up(session_id, "persist_skipped_budget",
                          f"the durable budget is full ({others} of {self.budget_bytes} bytes held, "
                          f"{packed.nbytes} needed)")
            return
        meta = item.ckv.meta
        manifest = {"format": FORMAT_VERSION, "session_id": session_id, "owner": item.owner, "press": item.press,
                    "model_id": meta.model_id, "dtype": meta.dtype, "nbytes": packed.nbytes,
                    "written_s": time.time(), "packed": packed.manifest}
        stem = self.root / file_stem(session_id)
        try:
            _write_atomic(stem.with_suffix(".kv"), memoryview(packed.buffer.numpy()))
            _write_atomic(stem.with_suffix(".json"), json.dumps(manifest).encode())
        except OSError as exc:
            self._give_up(session_id, "persist_failed_io", f"writing failed ({exc}; disk full?)")
            return
        with self._lock:
            self._index[session_id] = _info(manifest)
            self.counters["persisted"] += 1

    def _give_up(self, session_id: str, counter: str, why: str) -> None:
        self._remove_files(session_id)
        with self._lock:
            self._index.pop(session_id, None)
            self.counters[counter] += 1
        log.warning("session=%s not persisted: %s; after a restart it will be recomputed from its context",
                    session_id, why)

    # ---- reading and deleting ---------------------------------------------------------------------

    def read(self, session_id: str, *, owner: str | None = None, press: dict[str, Any] | None = None,
             model_id: str | None = None, dtype: str | None = None) -> CompressedKV:
        """The verified cache of ``session_id`` (``read_persisted`` on this store's root)."""
        return read_persisted(self.root, session_id, owner=owner, press=press, model_id=model_id, dtype=dtype)

    def share(self, session_id: str, ckv: CompressedKV, link: Callable[[Path, dict[str, Any]], T]) -> T | None:
        """If ``session_id``'s file holds exactly ``ckv`` (see the module docstring), call
        ``link(buffer_path, packed_manifest)`` - with this store's writes and deletes held off, so the
        file cannot change in between - and return its result; else None (counted by reason).
        OSError from ``link`` propagates (counted ``spill_not_shared_link``). A spill never waits for
        the writer thread: while a write or delete holds the files, it is not shared (``busy``)."""
        if not self._io.acquire(blocking=False):  # the pool's lock is held by our caller: never block it
            self._count("spill_not_shared_busy")
            return None
        try:
            packed, why = self._matching_manifest(session_id, ckv)
            if packed is not None:
                try:
                    result = link((self.root / file_stem(session_id)).with_suffix(".kv"), packed)
                except OSError:
                    self._count("spill_not_shared_link")
                    raise
                self._count("spill_shared")
                return result
        finally:
            self._io.release()
        self._count(f"spill_not_shared_{why}")
        return None

    def _matching_manifest(self, session_id: str, ckv: CompressedKV) -> tuple[dict[str, Any] | None, str]:
        """``(packed manifest, "")`` if ``session_id``'s file holds exactly ``ckv``, else ``(None, why)``.
        Holding ``_io``."""
        with self._lock:
            if session_id in self._pending:
                return None, "pending"  # a newer cache is about to replace the file
            info = self._index.get(session_id)
        if info is None:
            return None, "missing"
        if info.nbytes != ckv.nbytes or info.dtype != ckv.meta.dtype or info.model_id != ckv.meta.model_id:
            return None, "different"
        stem = self.root / file_stem(session_id)
        try:  # the small manifest first: the buffer is read only for a cache that matches it
            packed = json.loads(stem.with_suffix(".json").read_bytes())["packed"]
        except FileNotFoundError:
            return None, "missing"
        except (OSError, ValueError, KeyError, TypeError):
            return None, "corrupt"
        if packed.get("meta") != json.loads(json.dumps(ckv.meta.to_json())) or packed.get("checksum") != checksum_of(ckv):
            return None, "different"  # another cache of this session (re-compressed, quantized, extended)
        try:
            raw = np.fromfile(stem.with_suffix(".kv"), dtype=np.uint8)
        except FileNotFoundError:
            return None, "missing"
        except (OSError, ValueError):
            return None, "corrupt"
        try:
            verify(PackedKV(torch.from_numpy(raw), packed))
        except (ChecksumError, KeyError, TypeError):
            return None, "corrupt"
        return packed, ""

    def _count(self, counter: str) -> None:
        with self._lock:
            self.counters[counter] += 1

    def delete(self, session_id: str) -> bool:
        """Drop ``session_id``'s pending write and files (after a write in progress); True if any existed."""
        with self._lock:
            had = self._pending.pop(session_id, None) is not None
        with self._io:
            with self._lock:
                had = self._index.pop(session_id, None) is not None or had
            self._remove_files(session_id)
        if had:
            with self._lock:
                self.counters["deleted"] += 1
        return had

    def _remove_files(self, session_id: str) -> None:
        stem = self.root / file_stem(session_id)
        for path in (stem.with_suffix(".json"), stem.with_suffix(".kv")):  # manifest first: never a torn pair
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish pending writes and stop the writer thread."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._writer is not None:
            self._writer.join(timeout=60)


def _info(manifest: dict[str, Any]) -> PersistedInfo:
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"format {manifest.get('format')!r} is not {FORMAT_VERSION}")
    return PersistedInfo(session_id=manifest["session_id"], nbytes=int(manifest["nbytes"]), owner=manifest["owner"],
                         press=manifest["press"], model_id=manifest["model_id"], dtype=manifest["dtype"])


def _write_atomic(path: Path, data: memoryview | bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
