"""local: same-node handoff (prefill actor -> decode actor) with as few copies as possible.

=====================  ======================================================  =================
endpoints              how                                                     copies
=====================  ======================================================  =================
same process           the payload tensor itself is handed over                0
same node, CUDA        CUDA IPC handle (same physical GPU)                     0
same node, CPU         the source copies into the target's shared-memory pool  1
=====================  ======================================================  =================

The target keeps a pool of pre-faulted shared-memory buffers (``memfd_create``, so nothing is
left behind when a process dies; buffer_pool.BufferPool): its prepare names one as
``/proc/<pid>/fd/<fd>``, the source maps it (mappings are cached) and copies the payload in, so
neither side pays page faults per transfer. The target receives the bytes *lent*; its import hook copies or
unpacks them (kvpool.unpack copies). Endpoints on different nodes are refused with
TransferUnavailableError: use nixl, collective or object_store (``auto`` does).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from typing import Any

import torch
from pydantic import Field

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.buffer_pool import MIB, BufferPool, PooledBuffer
from transfer.process import PROCESS_TOKEN
from transfer.errors import TransferError, TransferUnavailableError
from transfer.states import FailureReason, TransferId

_HANDOFF: dict[str, torch.Tensor] = {}  # same-process handoffs: transfer id -> payload
_HANDOFF_LOCK = threading.Lock()
_BUFFER_NUMBERS = itertools.count()
_MAPPINGS_KEPT = 16


class LocalConfig(BackendConfig):
    """``shm_pool_max_bytes``: shared memory a target keeps for incoming caches."""

    chunk_bytes: int = Field(default=64 * MIB, gt=0)
    shm_pool_max_bytes: int = Field(default=4 << 30, gt=0)


def _cuda_uuid(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    return str(torch.cuda.get_device_properties(device).uuid)


class LocalSender(Sender):
    config: LocalConfig

    def __init__(self, config: LocalConfig) -> None:
        super().__init__(config)
        self._held: dict[str, torch.Tensor] = {}
        self._mappings: "OrderedDict[str, torch.Tensor]" = OrderedDict()  # target buffer id -> our mapping
        self._lock = threading.Lock()

    def send(self, job: SendJob) -> dict[str, Any]:
        descriptor, payload = job.descriptor, job.payload
        if job.drop:
            payload = payload[:0]
        if descriptor["process"] == PROCESS_TOKEN:
            with _HANDOFF_LOCK:
                _HANDOFF[job.transfer_id] = payload
            job.progress(job.payload.numel())
            return {"mode": "inproc"}
        if payload.device.type == "cuda" and descriptor.get("cuda_uuid") == _cuda_uuid(payload.device):
            return self._send_cuda_ipc(job, payload)
        return self._send_shm(job, payload)

    def _send_cuda_ipc(self, job: SendJob, payload: torch.Tensor) -> dict[str, Any]:
        from torch.multiprocessing.reductions import reduce_tensor

        with self._lock:
            self._held[job.transfer_id] = payload  # the target maps this memory until we release
        rebuild, args = reduce_tensor(payload)
        job.progress(job.payload.numel())
        return {"mode": "cuda_ipc", "rebuild": rebuild, "args": args}

    def _send_shm(self, job: SendJob, payload: torch.Tensor) -> dict[str, Any]:
        descriptor = job.descriptor
        shared = self._mapping(descriptor["buffer_id"], descriptor["path"], descriptor["capacity_bytes"])
        nbytes = payload.numel()
        for start in range(0, nbytes, self.config.chunk_bytes):
            end = min(start + self.config.chunk_bytes, nbytes)
            shared[start:end].copy_(payload[start:end])
            job.progress(end)
        return {"mode": "shm", "nbytes": nbytes}

    def _mapping(self, buffer_id: str, path: str, size: int) -> torch.Tensor:
        """Our mapping of the target's buffer (keyed by its id: fd numbers, hence paths, get reused)."""
        with self._lock:
            mapping = self._mappings.pop(buffer_id, None)
            if mapping is None:
                mapping = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
            self._mappings[buffer_id] = mapping
            while len(self._mappings) > _MAPPINGS_KEPT:
                self._mappings.popitem(last=False)
            return mapping

    def release(self, transfer_id: TransferId) -> None:
        with _HANDOFF_LOCK:
            _HANDOFF.pop(transfer_id, None)
        with self._lock:
            self._held.pop(transfer_id, None)


class LocalReceiver(Receiver):
    config: LocalConfig

    def __init__(self, config: LocalConfig) -> None:
        super().__init__(config)
        self._pool = BufferPool("cpu", config.shm_pool_max_bytes, allocate=_allocate_shared, deregister=_close)
        self._buffers: dict[str, PooledBuffer] = {}
        self._lock = threading.Lock()

    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        descriptor = {"process": PROCESS_TOKEN, "cuda_uuid": _cuda_uuid(job.device)}
        if job.source["process"] == PROCESS_TOKEN:
            return descriptor  # in-process handoff: no shared memory needed
        buffer = self._pool.acquire(job.nbytes)  # for the shm path (CUDA IPC leaves it idle)
        with self._lock:
            self._buffers[job.transfer_id] = buffer
        _, path, buffer_id = buffer.registration
        return {**descriptor, "path": path, "buffer_id": buffer_id, "capacity_bytes": buffer.capacity_bytes}

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        mode = report["mode"]
        if mode == "inproc":
            with _HANDOFF_LOCK:
                buffer = _HANDOFF.pop(job.transfer_id, None)
            if buffer is None:
                raise TransferError(FailureReason.DATA_LOST, "no in-process handoff found")
        elif mode == "cuda_ipc":
            buffer = report["rebuild"](*report["args"])
        else:
            with self._lock:
                buffer = self._buffers[job.transfer_id].view(report["nbytes"])
        if buffer.numel() != job.nbytes:
            raise TransferError(FailureReason.DATA_LOST, f"{buffer.numel()} of {job.nbytes} bytes arrived")
        return LentBuffer(buffer.to(job.device), lambda: self.abort(job.transfer_id, source_quiesced=True))

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        with self._lock:
            buffer = self._buffers.pop(transfer_id, None)
        if buffer is not None:
            (self._pool.release if source_quiesced else self._pool.quarantine)(buffer)

    def stats(self) -> dict[str, Any]:
        return {"shm": self._pool.stats()}


def _allocate_shared(size: int) -> tuple[torch.Tensor, tuple[int, str, str]]:
    """Anonymous shared memory of ``size`` bytes, mapped here; other local processes open ``path``."""
    buffer_id = f"{PROCESS_TOKEN[:12]}-{next(_BUFFER_NUMBERS)}"
    fd = os.memfd_create(f"kvfleet-{buffer_id}")
    os.ftruncate(fd, size)
    path = f"/proc/{os.getpid()}/fd/{fd}"
    return torch.from_file(path, shared=True, size=size, dtype=torch.uint8), (fd, path, buffer_id)


def _close(registration: tuple[int, str, str]) -> None:
    os.close(registration[0])  # the memory goes once the last mapping (ours, the sources') is gone


class LocalBackend(TransferBackend):
    name = "local"
    Config = LocalConfig
    sender_cls = LocalSender
    receiver_cls = LocalReceiver

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        if source["node_id"] != target["node_id"]:
            raise TransferUnavailableError(f"local moves data only within one node; source is on {source['node_id']}, "
                                           f"target on {target['node_id']}: use nixl, collective or object_store "
                                           "(or auto)")
        return Route(self.name, self.config.model_dump(mode="json"))
