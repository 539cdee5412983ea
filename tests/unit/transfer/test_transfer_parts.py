"""Unit tests of the transfer building blocks that need no endpoints: tickets, registry,
expectations, the buffer pool, faults."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from kvpool import CapacityError, pack
from transfer import (
    AUTO_ORDER, FailureReason, Fault, KVExpectation, TransferError, TransferFailedError, TransferState,
    UnknownBackendError, backend_names, make_backend,
)
from transfer.buffer_pool import MIB, BufferPool, size_class
from transfer.faults import corrupted_copy
from transfer.states import TransferId
from transfer.testing import synthetic_session
from transfer.ticket import TransferTicket


def _ticket(timeout_s: float = 5.0) -> TransferTicket:
    return TransferTicket(TransferId("xfer-test"), "session-1", "fake", timeout_s)


# ---- tickets -----------------------------------------------------------------------------------
def test_ticket_moves_through_states_once():
    ticket = _ticket()
    assert ticket.poll().state == TransferState.PENDING
    ticket._transferring(100)
    assert ticket.poll().state == TransferState.TRANSFERRING and ticket.poll().nbytes == 100
    assert ticket._done(100) is True
    assert ticket._fail(FailureReason.TIMEOUT, "late") is False  # the first terminal state wins
    status = ticket.result(0.1)
    assert (status.state, status.bytes_moved, status.reason) == (TransferState.DONE, 100, None)


def test_failed_ticket_result_raises_with_the_reason():
    ticket = _ticket()
    ticket._fail(FailureReason.CHECKSUM_MISMATCH, "bad bytes")
    with pytest.raises(TransferFailedError) as raised:
        ticket.result(0.1)
    assert raised.value.reason == FailureReason.CHECKSUM_MISMATCH
    assert raised.value.state == TransferState.FAILED
    assert "bad bytes" in str(raised.value)


def test_wait_returns_the_running_status_after_its_timeout_and_result_raises_timeout():
    ticket = _ticket()
    assert ticket.wait(0.05).state == TransferState.PENDING
    with pytest.raises(TimeoutError):
        ticket.result(0.05)


def test_abort_is_a_request_until_the_orchestrator_ends_the_ticket():
    ticket = _ticket()
    assert ticket.abort() is True and ticket.abort_requested
    assert ticket.poll().state == TransferState.PENDING
    ticket._aborted("aborted by the caller")
    assert ticket.poll().state == TransferState.ABORTED
    assert ticket.abort() is False


def test_done_callbacks_run_once_and_late_ones_at_once():
    ticket, seen = _ticket(), []
    ticket.add_done_callback(lambda status: seen.append(("early", status.state)))
    threading.Timer(0.05, lambda: ticket._done(1)).start()
    ticket.wait(5)
    ticket.add_done_callback(lambda status: seen.append(("late", status.state)))
    assert seen == [("early", TransferState.DONE), ("late", TransferState.DONE)]


def test_wait_async_wakes_when_the_ticket_ends():
    ticket = _ticket()

    async def main():
        threading.Timer(0.05, lambda: ticket._fail(FailureReason.PEER_DIED, "gone")).start()
        return await ticket.wait_async(5)

    status = asyncio.run(main())
    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.PEER_DIED)


def test_ticket_needs_a_positive_timeout():
    with pytest.raises(ValueError):
        TransferTicket(TransferId("x"), "k", "fake", 0)


# ---- registry ----------------------------------------------------------------------------------
def test_registry_knows_every_backend_and_lists_them_on_a_typo():
    assert {"nixl", "collective", "object_store", "local", "fake", "auto"} <= set(backend_names())
    with pytest.raises(UnknownBackendError) as raised:
        make_backend("nixel")
    for name in ("nixl", "collective", "object_store", "local", "fake", "auto"):
        assert name in str(raised.value)


def test_backend_configs_are_closed():
    with pytest.raises(ValueError, match="chunk_byte"):
        make_backend("nixl", chunk_byte=1)


def test_auto_rejects_unknown_candidates_and_keeps_the_documented_order():
    assert AUTO_ORDER == ("local", "nixl", "collective", "object_store")
    with pytest.raises(UnknownBackendError):
        make_backend("auto", order=("local", "carrier-pigeon"))


# ---- expectations ------------------------------------------------------------------------------
def test_expectation_accepts_the_same_layout_and_names_every_difference():
    ckv = synthetic_session(32)
    manifest = pack(ckv).manifest
    KVExpectation.like(ckv).check(manifest)
    with pytest.raises(TransferError) as raised:
        KVExpectation.like(ckv, model_id="other", head_dim=128).check(manifest)
    assert raised.value.reason == FailureReason.MANIFEST_MISMATCH
    assert "model_id" in str(raised.value) and "head_dim" in str(raised.value)


def test_expectation_caps_size_with_capacity():
    ckv = synthetic_session(32)
    manifest = pack(ckv).manifest
    with pytest.raises(TransferError) as raised:
        KVExpectation(max_bytes=manifest["nbytes"] - 1).check(manifest)
    assert raised.value.reason == FailureReason.CAPACITY


# ---- buffer pool -------------------------------------------------------------------------------
def test_size_classes_have_a_floor_and_at_most_a_quarter_of_slack():
    assert size_class(1, MIB) == MIB
    assert size_class(MIB + 1, MIB) == MIB + MIB // 4
    assert size_class(3 * MIB, MIB) == 3 * MIB
    assert size_class(512 * MIB + 10, MIB) == 640 * MIB
    for nbytes in (MIB + 1, 5 * MIB + 3, 300 * MIB, 513 * MIB):
        assert nbytes <= size_class(nbytes, MIB) <= 1.25 * nbytes


def test_pool_registers_once_and_reuses():
    registered = []
    pool = BufferPool("cpu", 64 * MIB, register=lambda t: registered.append(t.data_ptr()) or len(registered),
                      deregister=lambda r: None)
    first = pool.acquire(3 * MIB)
    address = first.address
    pool.release(first)
    for _ in range(5):
        buffer = pool.acquire(3 * MIB)
        assert buffer.address == address
        pool.release(buffer)
    stats = pool.stats()
    assert len(registered) == 1 and stats["registrations"] == 1 and stats["reuses"] == 5


def test_pool_evicts_idle_buffers_and_refuses_beyond_its_cap():
    deregistered = []
    pool = BufferPool("cpu", 8 * MIB, register=lambda t: t.data_ptr(), deregister=deregistered.append)
    small = pool.acquire(MIB)
    pool.release(small)
    big = pool.acquire(8 * MIB - 1)  # 8 MiB class: needs the idle 1 MiB buffer evicted
    assert deregistered == [small.registration]
    with pytest.raises(CapacityError, match="max_bytes"):
        pool.acquire(MIB)
    pool.release(big)
    assert pool.acquire(MIB).capacity_bytes == MIB


def test_quarantined_buffers_are_never_handed_out_again():
    pool = BufferPool("cpu", 16 * MIB)
    buffer = pool.acquire(MIB)
    pool.quarantine(buffer)
    again = pool.acquire(MIB)
    assert again is not buffer
    assert pool.stats()["quarantined_bytes"] == MIB


# ---- faults ------------------------------------------------------------------------------------
def test_corruption_works_on_a_copy():
    payload = torch.arange(16, dtype=torch.uint8)
    copy = corrupted_copy(payload, 0.5)
    assert torch.equal(payload, torch.arange(16, dtype=torch.uint8))
    assert int((copy != payload).sum()) == 1 and copy[8] == 255 - 8


def test_fault_models_are_closed():
    with pytest.raises(ValueError):
        Fault(kind="drop", delay=3)
    assert Fault.die("target").side.value == "target"
