"""nixl: one-sided writes between NIXL agents (UCX backend); DRAM on CPU, VRAM on GPU.

Each endpoint process runs one NIXL agent (named after the process). Agent metadata travels
through Ray: the target's ``prepare`` returns its metadata (with a generation number that
changes whenever it registers or deregisters memory) and the address of a receive buffer; the
source loads the metadata only when the generation changed.

Registered memory is pooled on both sides (buffer_pool.BufferPool): the target receives into a
registered buffer it reuses, and the source stages the payload into a registered buffer of its
own, chunk by chunk, posting each chunk's WRITE as soon as it is copied (copy and wire overlap).
Every chunk carries a notification ``kvfleet|<transfer id>|<chunk>``; the target waits for all
of them, so a chunk that never arrives is DATA_LOST rather than silently stale bytes. Memory a
source may still write into after a failure is quarantined, never reused.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from transfer.base import LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.buffer_pool import PooledBuffer
from transfer.errors import TransferAborted, TransferError, TransferUnavailableError
from transfer.nixl_config import NixlConfig
from transfer.nixl_runtime import NOTIF_PREFIX, NixlRuntime, memory_kind, runtime
from transfer.states import FailureReason, TransferId



def _chunks(nbytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk_bytes, nbytes)) for start in range(0, max(nbytes, 1), chunk_bytes)]


class NixlSender(Sender):
    config: NixlConfig

    def send(self, job: SendJob) -> dict[str, Any]:
        rt, desc, payload = runtime(self.config), job.descriptor, job.payload
        rt.ensure_remote(desc["agent"], desc["metadata"], desc["generation"])
        chunks = _chunks(payload.numel(), self.config.chunk_bytes)
        staging = rt.pool(payload.device, self.config).acquire(payload.numel())
        handles: list[Any] = []
        try:
            for index, (start, end) in enumerate(chunks):
                job.progress(start)
                if job.drop or end == start:
                    continue
                handles.append(self._post(rt, job, staging, index, start, end))
            self._wait(rt, job, handles)
            job.progress(payload.numel())
        except BaseException:
            self._settle(rt, staging, handles)
            raise
        for handle in handles:
            handle.release()
        rt.pool(payload.device, self.config).release(staging)
        return {"chunks": len(chunks) if payload.numel() else 0}

    def stats(self) -> dict[str, Any]:
        return runtime(self.config).stats()

    def _post(self, rt: NixlRuntime, job: SendJob, staging: PooledBuffer, index: int, start: int, end: int) -> Any:
        desc, payload = job.descriptor, job.payload
        staging.tensor[start:end].copy_(payload[start:end])
        if payload.device.type == "cuda":
            torch.cuda.current_stream(payload.device).synchronize()  # NIXL reads outside stream order
        mem, dev = memory_kind(payload.device)
        local = rt.agent.get_xfer_descs([(staging.address + start, end - start, dev)], mem)
        remote = rt.agent.get_xfer_descs([(desc["address"] + start, end - start, desc["device_id"])], desc["mem_type"])
        notif = NOTIF_PREFIX + f"{job.transfer_id}|{index}".encode()
        handle = rt.agent.initialize_xfer("WRITE", local, remote, desc["agent"], notif)
        if rt.agent.transfer(handle) == "ERR":
            handle.release()
            raise TransferError(FailureReason.BACKEND_ERROR, f"NIXL refused to post chunk {index} to {desc['agent']}")
        return handle

    def _wait(self, rt: NixlRuntime, job: SendJob, handles: list[Any]) -> None:
        pending, delay_s = list(handles), 0.0001
        while pending:
            states = [rt.agent.check_xfer_state(handle) for handle in pending]
            if "ERR" in states:
                raise TransferError(FailureReason.BACKEND_ERROR, f"NIXL write to {job.descriptor['agent']} failed "
                                    "(peer gone or connection lost)")
            pending = [handle for handle, state in zip(pending, states) if state != "DONE"]
            if not pending:
                return
            if job.remaining_s() <= 0:
                raise TransferError(FailureReason.TIMEOUT, f"{len(pending)} NIXL writes still running at the deadline")
            if job.cancelled.wait(delay_s):
                raise TransferAborted(job.transfer_id)
            delay_s = min(delay_s * 2, 0.002)

    def _settle(self, rt: NixlRuntime, staging: PooledBuffer, handles: list[Any]) -> None:
        """After a failure: cancel writes still running; reuse staging only if none is left."""
        pool, clean = rt.pool(staging.tensor.device, self.config), True
        for handle in handles:
            try:
                handle.release()  # NIXL cancels an active transfer, or raises if it cannot
            except Exception:  # a write we cannot cancel may still read the staging buffer
                clean = False
        if clean:
            pool.release(staging)
        else:
            pool.quarantine(staging)


class NixlReceiver(Receiver):
    config: NixlConfig

    def __init__(self, config: NixlConfig) -> None:
        super().__init__(config)
        self._buffers: dict[str, PooledBuffer] = {}
        self._lock = threading.Lock()

    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        rt = runtime(self.config)
        buffer = rt.pool(job.device, self.config).acquire(job.nbytes)
        with self._lock:
            self._buffers[job.transfer_id] = buffer
        metadata, generation = rt.metadata()
        mem, dev = memory_kind(job.device)
        return {"agent": rt.name, "metadata": metadata, "generation": generation, "address": buffer.address,
                "device_id": dev, "mem_type": mem}

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        rt, count = runtime(self.config), int(report["chunks"])
        arrived = rt.board.wait(job.transfer_id, count, arrival_deadline, job.cancelled)
        if arrived < count:
            if time.monotonic() >= job.deadline:
                raise TransferError(FailureReason.TIMEOUT, f"{arrived} of {count} chunks arrived before the deadline")
            raise TransferError(FailureReason.DATA_LOST, f"{arrived} of {count} chunks arrived; the source reported "
                                "all of them written")
        rt.board.forget(job.transfer_id)
        with self._lock:
            buffer = self._buffers[job.transfer_id]
        return LentBuffer(buffer.view(job.nbytes), lambda: self.abort(job.transfer_id, source_quiesced=True))

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        with self._lock:
            buffer = self._buffers.pop(transfer_id, None)
        runtime(self.config).board.forget(transfer_id)
        if buffer is None:
            return
        pool = runtime(self.config).pool(buffer.tensor.device, self.config)
        (pool.release if source_quiesced else pool.quarantine)(buffer)

    def stats(self) -> dict[str, Any]:
        return runtime(self.config).stats()


class NixlBackend(TransferBackend):
    name = "nixl"
    Config = NixlConfig
    sender_cls = NixlSender
    receiver_cls = NixlReceiver

    @classmethod
    def availability(cls) -> str | None:
        try:
            import nixl  # noqa: F401  (loads the CUDA-matched wheel)
            from nixl._api import nixl_agent  # noqa: F401
        except ImportError as error:
            return f"NIXL is not importable: {error}"
        return None

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        for side, info in (("source", source), ("target", target)):
            reason = info.get("backends", {}).get(self.name)
            if reason is not None:
                raise TransferUnavailableError(f"nixl is unavailable on the {side} ({info['endpoint_id']}): {reason}")
        return Route(self.name, self.config.model_dump(mode="json"))
