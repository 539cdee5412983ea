"""TransferTicket: one transfer attempt, pollable, awaitable with a timeout, abortable.

The orchestrator thread (see protocol.py) drives the ticket through its states; callers only
read it, wait on it and may abort it. Transitions happen once: the first terminal state wins.
Abort is a request: it takes effect within a poll slice (~50 ms) unless the target has already
been told to commit, in which case the ticket ends DONE and ``abort()`` returned True in vain
(``poll().state`` tells the truth).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Callable

from transfer.errors import TransferFailedError
from transfer.states import FailureReason, TransferId, TransferState

# After the deadline the orchestrator needs at most one poll slice to mark the ticket; waits
# without an explicit timeout allow this much on top of the ticket's own timeout.
_SETTLE_S = 5.0


@dataclass(frozen=True)
class TicketStatus:
    """A snapshot of a ticket. ``nbytes``: payload size once known; ``bytes_moved``: verified bytes."""

    transfer_id: TransferId
    key: str
    backend: str
    state: TransferState
    nbytes: int
    bytes_moved: int
    reason: FailureReason | None
    message: str
    elapsed_s: float

    @property
    def throughput_bytes_per_s(self) -> float:
        return self.bytes_moved / self.elapsed_s if self.elapsed_s > 0 else 0.0


class TransferTicket:
    """A transfer of the cache stored under ``key`` from a source endpoint to a target endpoint."""

    def __init__(self, transfer_id: TransferId, key: str, backend: str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.transfer_id = transfer_id
        self.key = key
        self.timeout_s = timeout_s
        self._backend = backend
        self._created = time.monotonic()
        self.deadline = self._created + timeout_s
        self._cond = threading.Condition()
        self._state = TransferState.PENDING
        self._nbytes = 0
        self._bytes_moved = 0
        self._reason: FailureReason | None = None
        self._message = ""
        self._finished: float | None = None
        self._abort_requested = threading.Event()
        self._callbacks: list[Callable[[TicketStatus], None]] = []

    # ---- reading -----------------------------------------------------------------------------
    @property
    def state(self) -> TransferState:
        return self._state

    @property
    def backend(self) -> str:
        return self._backend

    def poll(self) -> TicketStatus:
        """The current status; never blocks."""
        with self._cond:
            end = self._finished if self._finished is not None else time.monotonic()
            return TicketStatus(self.transfer_id, self.key, self._backend, self._state, self._nbytes,
                                self._bytes_moved, self._reason, self._message, end - self._created)

    def wait(self, timeout_s: float | None = None) -> TicketStatus:
        """Block until the ticket is terminal or ``timeout_s`` passed; return the status either way.

        ``None`` waits until the ticket's own deadline (plus a few seconds for it to settle):
        a ticket always ends by then, so this wait is bounded too.
        """
        if timeout_s is None:
            timeout_s = max(self.deadline - time.monotonic(), 0.0) + _SETTLE_S
        with self._cond:
            self._cond.wait_for(lambda: self._state.terminal, timeout=timeout_s)
        return self.poll()

    def result(self, timeout_s: float | None = None) -> TicketStatus:
        """Wait like ``wait``; return the status if DONE.

        Raises TransferFailedError if the ticket FAILED or was ABORTED, TimeoutError if it is
        still running after ``timeout_s``.
        """
        status = self.wait(timeout_s)
        if status.state == TransferState.DONE:
            return status
        if status.state.terminal:
            raise TransferFailedError(self.transfer_id, status.state, status.reason, status.message)
        raise TimeoutError(f"transfer {self.transfer_id} still {status.state.value} after {timeout_s} s; "
                           "wait longer or abort() it")

    async def wait_async(self, timeout_s: float | None = None) -> TicketStatus:
        """``wait`` for asyncio callers (e.g. an async Serve deployment); never blocks the loop."""
        if timeout_s is None:
            timeout_s = max(self.deadline - time.monotonic(), 0.0) + _SETTLE_S
        loop = asyncio.get_running_loop()
        finished: asyncio.Future = loop.create_future()

        def wake(_: TicketStatus) -> None:
            loop.call_soon_threadsafe(lambda: finished.done() or finished.set_result(None))

        self.add_done_callback(wake)
        try:
            await asyncio.wait_for(asyncio.shield(finished), timeout=timeout_s)
        except asyncio.TimeoutError:
            pass
        return self.poll()

    def add_done_callback(self, callback: Callable[[TicketStatus], None]) -> None:
        """Call ``callback(status)`` once the ticket is terminal (at once if it already is).

        Callbacks run on the orchestrator thread: keep them short and non-blocking.
        """
        with self._cond:
            if not self._state.terminal:
                self._callbacks.append(callback)
                return
        callback(self.poll())

    # ---- aborting ----------------------------------------------------------------------------
    def abort(self) -> bool:
        """Ask the orchestrator to abort; False if the ticket was already terminal."""
        with self._cond:
            if self._state.terminal:
                return False
            self._abort_requested.set()
            return True

    @property
    def abort_requested(self) -> bool:
        return self._abort_requested.is_set()

    # ---- driven by the orchestrator ----------------------------------------------------------
    def _set_backend(self, name: str) -> None:
        with self._cond:
            self._backend = name

    def _transferring(self, nbytes: int) -> None:
        with self._cond:
            if self._state == TransferState.PENDING:
                self._state = TransferState.TRANSFERRING
                self._nbytes = nbytes

    def _done(self, bytes_moved: int) -> bool:
        return self._finish(TransferState.DONE, None, "", bytes_moved)

    def _fail(self, reason: FailureReason, message: str) -> bool:
        return self._finish(TransferState.FAILED, reason, message, 0)

    def _aborted(self, message: str) -> bool:
        return self._finish(TransferState.ABORTED, None, message, 0)

    def _finish(self, state: TransferState, reason: FailureReason | None, message: str, moved: int) -> bool:
        with self._cond:
            if self._state.terminal:
                return False
            self._state, self._reason, self._message = state, reason, message
            self._bytes_moved = moved
            self._finished = time.monotonic()
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        status = self.poll()
        for callback in callbacks:
            callback(status)
        return True

    def __repr__(self) -> str:
        status = self.poll()
        return (f"TransferTicket({self.transfer_id}, key={self.key!r}, backend={self._backend}, "
                f"state={status.state.value}, reason={status.reason.value if status.reason else None})")
