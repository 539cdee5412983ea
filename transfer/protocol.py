"""The orchestrator: drives one ticket through describe -> prepare -> send -> finish -> commit.

Runs on a thread in the caller's process (``TransferBackend.start``). Every remote call is
awaited in short slices so that an abort request or the deadline takes effect within ~50 ms,
whatever the endpoints are doing. Whatever happens, the ticket ends terminal and both endpoints
are told to clean up: the source first (so it stops writing), then the target.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Iterator

from kvpool.errors import KVFleetError
from transfer import metrics
from transfer.errors import TransferAborted, TransferError, TransferUnavailableError
from transfer.expectation import KVExpectation
from transfer.faults import Fault
from transfer.peer import PendingCall, Peer, as_peer
from transfer.states import FailureReason, TransferId, TransferState
from transfer.ticket import TransferTicket

log = logging.getLogger(__name__)

_SLICE_S = 0.05
_INFO_CACHE: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
_INFO_CACHE_SIZE = 4096
_INFO_LOCK = threading.Lock()
_EXCLUSIVE: dict[str, threading.Lock] = {}


class _AbortRequested(Exception):
    pass


def _await(call: PendingCall, ticket: TransferTicket, step: str, *, abortable: bool = True) -> Any:
    """Wait for ``call`` until the ticket's deadline, watching for abort requests."""
    while True:
        if abortable and ticket.abort_requested:
            raise _AbortRequested()
        left = ticket.deadline - time.monotonic()
        if left <= 0:
            raise TransferError(FailureReason.TIMEOUT, f"no answer to '{step}' within the {ticket.timeout_s} s "
                                "timeout; retry with a longer timeout or another backend")
        if call.done(min(_SLICE_S, left)):
            return call.result()


def _bounded(call: PendingCall, timeout_s: float) -> Any:
    """Wait for a cleanup call; re-raise its error, TimeoutError if it does not answer in time."""
    if not call.done(timeout_s):
        raise TimeoutError(f"no answer within {timeout_s} s")
    return call.result()


def endpoint_info(peer: Peer, ticket: TransferTicket) -> dict[str, Any]:
    """``peer.transfer_info()``, cached per peer when it cannot change."""
    if not peer.stable_info:
        return _await(peer.call("transfer_info"), ticket, "transfer_info")
    with _INFO_LOCK:
        if peer.key in _INFO_CACHE:
            _INFO_CACHE.move_to_end(peer.key)
            return _INFO_CACHE[peer.key]
    info = _await(peer.call("transfer_info"), ticket, "transfer_info")
    with _INFO_LOCK:
        _INFO_CACHE[peer.key] = info
        while len(_INFO_CACHE) > _INFO_CACHE_SIZE:
            _INFO_CACHE.popitem(last=False)
    return info


def start_transfer(backend: Any, source: Any, target: Any, key: str, *, transfer_id: str | None = None,
                   expect: KVExpectation | None = None, timeout_s: float | None = None,
                   fault: Fault | None = None) -> TransferTicket:
    """Start moving the cache stored under ``key`` on ``source`` to ``target`` with ``backend`` (a
    ``base.TransferBackend``); return its ticket at once (the protocol runs on a thread).

    ``source``/``target``: ActorHandles of actors mixing in TransferEndpoint, or in-process
    TransferEndpoint objects. ``expect``: what the target accepts (checked on the target before
    bytes move). ``timeout_s``: the whole transfer's deadline (default: the backend config's
    ``default_timeout_s``). ``fault``: fault injection for tests (faults.py; default: the
    backend's ``next_fault()``). Never raises for transport problems: they end in a FAILED ticket.
    Raises TypeError for a source or target that is not an endpoint.
    """
    ticket = TransferTicket(TransferId(transfer_id or f"xfer-{uuid.uuid4().hex[:16]}"), key, backend.name,
                            timeout_s or backend.config.default_timeout_s)
    fault = fault or backend.next_fault()
    worker = threading.Thread(target=run_transfer, name=f"kvfleet-{ticket.transfer_id}", daemon=True,
                              args=(ticket, backend, as_peer(source), as_peer(target), expect, fault))
    worker.start()
    return ticket


def run_transfer(ticket: TransferTicket, backend: Any, source: Peer, target: Peer,
                 expect: KVExpectation | None, fault: Fault | None) -> None:
    """Drive ``ticket`` to a terminal state (never raises)."""
    progress: dict[str, Any] = {"described": False, "prepared": False, "committing": False}
    outcome = _outcome(ticket, backend, source, target, expect, fault, progress)
    if outcome is None:  # DONE: the target committed; only the source's staging is left to free
        metrics.observe(ticket.poll())
        _cleanup(ticket, backend, source, target, progress, done=True)
        return
    # clean both endpoints before the ticket turns terminal, so an immediate retry finds them
    # clean; but never hold the caller longer than settle_s
    cleaner = threading.Thread(target=_cleanup, args=(ticket, backend, source, target, progress, False),
                               name=f"kvfleet-cleanup-{ticket.transfer_id}", daemon=True)
    cleaner.start()
    cleaner.join(backend.config.settle_s)
    state, reason, message = outcome
    if state == TransferState.ABORTED:
        ticket._aborted(message)
    else:
        ticket._fail(reason, message)
    status = ticket.poll()
    metrics.observe(status)
    log.warning("transfer %s key=%s backend=%s %s (%s): %s", ticket.transfer_id, ticket.key, status.backend,
                status.state.value, status.reason.value if status.reason else "-", status.message)


def _outcome(ticket: TransferTicket, backend: Any, source: Peer, target: Peer, expect: KVExpectation | None,
             fault: Fault | None, progress: dict[str, Any]) -> tuple[TransferState, Any, str] | None:
    """Run the protocol; None if the ticket ended DONE, else the (state, reason, message) to end it with."""
    try:
        _run(ticket, backend, source, target, expect, fault, progress)
        return None
    except _AbortRequested:
        return TransferState.ABORTED, None, "aborted by the caller"
    except TransferError as error:
        return TransferState.FAILED, error.reason, error.detail
    except TransferAborted:
        return TransferState.ABORTED, None, "aborted by an endpoint"
    except TransferUnavailableError as error:
        return TransferState.FAILED, FailureReason.UNAVAILABLE, str(error)
    except KVFleetError as error:
        return TransferState.FAILED, FailureReason.BACKEND_ERROR, f"{type(error).__name__}: {error}"
    except Exception as error:  # the orchestrator thread must always end the ticket
        log.exception("transfer %s: unexpected error", ticket.transfer_id)
        return TransferState.FAILED, FailureReason.BACKEND_ERROR, f"unexpected {type(error).__name__}: {error}"


def _run(ticket: TransferTicket, backend: Any, source: Peer, target: Peer, expect: KVExpectation | None,
         fault: Fault | None, progress: dict[str, Any]) -> None:
    tid, key = ticket.transfer_id, ticket.key
    source_info = endpoint_info(source, ticket)
    target_info = endpoint_info(target, ticket)
    route = backend.plan(source_info, target_info)
    ticket._set_backend(route.backend)
    fault_json = fault.model_dump(mode="json") if fault else None
    expect_json = expect.model_dump(mode="json") if expect else None
    grace_s = backend.config.arrival_grace_s

    progress["described"] = True
    manifest = _await(source.call("transfer_describe", tid, key, _left(ticket)), ticket, "describe")
    ticket._transferring(int(manifest["nbytes"]))
    with _exclusive(route.exclusive, ticket):
        progress["prepared"] = True
        descriptor = _await(target.call("transfer_prepare", route.backend, route.config, tid, key, manifest,
                                        expect_json, fault_json, source_info, _left(ticket)), ticket, "prepare")
        report = _await(source.call("transfer_send", route.backend, route.config, tid, descriptor, fault_json,
                                    target_info, _left(ticket)), ticket, "send")
        nbytes = _await(target.call("transfer_finish", tid, report, _left(ticket), grace_s), ticket, "finish")
    if ticket.abort_requested:
        raise _AbortRequested()
    progress["committing"] = True  # the point of no return: the target imports, abort comes too late
    commit_s = _left(ticket) + backend.config.cleanup_timeout_s
    try:
        _bounded(target.call("transfer_commit", tid), commit_s)
    except TimeoutError:
        raise TransferError(FailureReason.TIMEOUT, f"target did not confirm the import within {commit_s:.1f} s; "
                            "it may hold the cache: check it before re-prefilling") from None
    ticket._done(int(nbytes))


@contextlib.contextmanager
def _exclusive(key: str | None, ticket: TransferTicket) -> Iterator[None]:
    """Hold the process-wide lock for ``key`` (no-op for None), waiting abortably until the deadline."""
    if key is None:
        yield
        return
    with _INFO_LOCK:
        lock = _EXCLUSIVE.setdefault(key, threading.Lock())
    while not lock.acquire(timeout=_SLICE_S):
        if ticket.abort_requested:
            raise _AbortRequested()
        if time.monotonic() >= ticket.deadline:
            raise TransferError(FailureReason.TIMEOUT, "waited the whole timeout for an earlier transfer between "
                                "the same endpoints (this transport moves one at a time)")
    try:
        yield
    finally:
        lock.release()


def _left(ticket: TransferTicket) -> float:
    return max(ticket.deadline - time.monotonic(), 0.001)


def _cleanup(ticket: TransferTicket, backend: Any, source: Peer, target: Peer, progress: dict[str, Any],
             done: bool) -> None:
    """Release the source, then (unless committed) abort the target. Failures are logged and counted."""
    tid, timeout_s = ticket.transfer_id, backend.config.cleanup_timeout_s
    source_quiesced = True
    if progress["described"]:
        error = _cleanup_call(source, ("transfer_release", tid), timeout_s)
        # a dead source writes nothing more; any other failure leaves target memory quarantined
        source_quiesced = error is None or (isinstance(error, TransferError) and
                                            error.reason == FailureReason.PEER_DIED)
        if not source_quiesced:
            metrics.cleanup_failed(ticket.backend, "source")
            log.warning("transfer %s: source release failed (%s); target memory is quarantined", tid, error)
    if progress["prepared"] and not (done and progress["committing"]):
        error = _cleanup_call(target, ("transfer_abort", tid, source_quiesced), timeout_s)
        if error is not None and not (isinstance(error, TransferError) and error.reason == FailureReason.PEER_DIED):
            metrics.cleanup_failed(ticket.backend, "target")
            log.warning("transfer %s: target abort failed: %s", tid, error)


def _cleanup_call(peer: Peer, call: tuple[Any, ...], timeout_s: float) -> Exception | None:
    """Run one cleanup call; return its error instead of raising (the caller logs and counts it)."""
    try:
        _bounded(peer.call(*call), timeout_s)
    except Exception as error:  # cleanup must reach the target even if the source call broke
        return error
    return None
