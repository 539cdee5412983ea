"""SessionTable: the single owner of a decode actor's ``session id -> KVHandle`` map.

Three kinds of callers change which pool entry a session points to, on different threads:

- actor methods (``store``, ``free``) on the actor's event loop,
- transfer import hooks (``transfer_import`` -> ``store``) on the endpoint's transfer threads,
- pool-event callbacks (an entry was evicted or freed), on whichever thread delivers pool events.

Every one of them goes through this class, and one lock makes each change a single step, so the
invariant holds at every moment a caller can observe: *the pool's session entries are exactly the
handles this table points to* (no entry that nothing points to - bytes counted against the budget
forever - and no pointer to an entry the pool no longer holds).

Lock order: this table's lock may be held while calling into the pool (the pool takes its own
lock inside and delivers events only after releasing it), never the other way round; a pool
event callback re-enters this table on the same thread only through ``forget`` (an RLock).
"""

from __future__ import annotations

import threading

from kvpool.compressed_kv import CompressedKV
from kvpool.errors import UnknownHandleError
from kvpool.handles import KVHandle
from kvpool.entry import EntryInfo
from kvpool.pool import KVPool


class SessionTable:
    def __init__(self, pool: KVPool) -> None:
        self._pool = pool
        self._handles: dict[str, KVHandle] = {}
        self._lock = threading.RLock()

    def store(self, session_id: str, ckv: CompressedKV, pinned: bool = False) -> tuple[KVHandle, EntryInfo]:
        """Put ``ckv`` in the pool and point ``session_id`` at it; the entry it replaces is freed.

        Returns the new handle and its ``EntryInfo`` as stored (read before another store for the
        same session can replace it). Raises what ``KVPool.put`` raises (CapacityError): then
        nothing changed.
        """
        with self._lock:
            handle = self._pool.put(ckv, session_id, pin=pinned)
            old = self._handles.get(session_id)
            self._handles[session_id] = handle
            if old is not None and old != handle:
                self._free_entry(old)
            try:
                return handle, self._pool.info(handle)
            except UnknownHandleError:  # evicted before it was recorded: its callback found nothing
                del self._handles[session_id]
                raise

    def free(self, session_id: str) -> int:
        """Forget ``session_id`` and free its entry; returns the bytes released (0 if none held)."""
        with self._lock:
            handle = self._handles.pop(session_id, None)
            return self._free_entry(handle) if handle is not None else 0

    def forget(self, session_id: str, handle: KVHandle) -> bool:
        """The pool dropped ``handle`` (evicted or freed): forget it if ``session_id`` still points
        to it (a newer store may already point elsewhere). True when something was forgotten."""
        with self._lock:
            if self._handles.get(session_id) != handle:
                return False
            del self._handles[session_id]
            return True

    def get(self, session_id: str) -> KVHandle | None:
        """The handle ``session_id`` points to, or None."""
        with self._lock:
            return self._handles.get(session_id)

    def snapshot(self) -> dict[str, KVHandle]:
        """A copy of the whole map (for listings; it may be stale by the time it is read)."""
        with self._lock:
            return dict(self._handles)

    def __len__(self) -> int:
        with self._lock:
            return len(self._handles)

    def _free_entry(self, handle: KVHandle) -> int:
        try:
            return self._pool.free(handle)
        except UnknownHandleError:
            return 0  # already evicted: its callback finds the table no longer pointing at it
