"""local: same-node handoff (prefill actor -> decode actor) with as few copies as possible.

=====================  ==================================================  ======================
endpoints              how                                                 copies in the handoff
=====================  ==================================================  ======================
same process           the payload tensor itself is handed over            0
same node, CUDA        CUDA IPC handle (same physical GPU)                 0
same node, CPU         a /dev/shm file the source fills, the target maps   1 (into shared memory)
=====================  ==================================================  ======================

The target receives the bytes *lent*; its import hook copies or unpacks them (kvpool.unpack
copies), after which the source releases its side. Endpoints on different nodes are refused
with TransferUnavailableError: use nixl, collective or object_store (``auto`` does).
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import torch
from pydantic import Field

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.endpoint import PROCESS_TOKEN
from transfer.errors import TransferError, TransferUnavailableError
from transfer.states import FailureReason, TransferId

_HANDOFF: dict[str, torch.Tensor] = {}  # same-process handoffs: transfer id -> payload
_HANDOFF_LOCK = threading.Lock()


class LocalConfig(BackendConfig):
    shm_dir: str = "/dev/shm"
    chunk_bytes: int = Field(default=64 << 20, gt=0)


def _cuda_uuid(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    return str(torch.cuda.get_device_properties(device).uuid)


class LocalSender(Sender):
    def __init__(self, config: LocalConfig) -> None:
        super().__init__(config)
        self._held: dict[str, Any] = {}
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
        return {"mode": "cuda_ipc", "rebuild": rebuild, "args": args, "nbytes": payload.numel()}

    def _send_shm(self, job: SendJob, payload: torch.Tensor) -> dict[str, Any]:
        path = job.descriptor["path"]
        with self._lock:
            self._held[job.transfer_id] = path
        nbytes = payload.numel()
        if nbytes == 0:
            open(path, "wb").close()
        else:
            shared = torch.from_file(path, shared=True, size=nbytes, dtype=torch.uint8)
            for start in range(0, nbytes, self.config.chunk_bytes):
                end = min(start + self.config.chunk_bytes, nbytes)
                shared[start:end].copy_(payload[start:end])
                job.progress(end)
        return {"mode": "shm", "path": path}

    def release(self, transfer_id: TransferId) -> None:
        with _HANDOFF_LOCK:
            _HANDOFF.pop(transfer_id, None)
        with self._lock:
            held = self._held.pop(transfer_id, None)
        if isinstance(held, str):
            _unlink(held)


class LocalReceiver(Receiver):
    def __init__(self, config: LocalConfig) -> None:
        super().__init__(config)
        self._paths: dict[str, str] = {}  # so that an abort removes a file a dead source left behind
        self._lock = threading.Lock()

    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        path = os.path.join(self.config.shm_dir, f"kvfleet-{job.transfer_id}-{uuid.uuid4().hex[:8]}")
        with self._lock:
            self._paths[job.transfer_id] = path
        return {"process": PROCESS_TOKEN, "cuda_uuid": _cuda_uuid(job.device), "path": path}

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        buffer = getattr(self, f"_take_{report['mode']}")(job, report)
        if buffer.numel() != job.nbytes:
            raise TransferError(FailureReason.DATA_LOST, f"{buffer.numel()} of {job.nbytes} bytes arrived")
        return LentBuffer(buffer.to(job.device), lambda: None)

    def _take_inproc(self, job: ReceiveJob, report: dict[str, Any]) -> torch.Tensor:
        with _HANDOFF_LOCK:
            buffer = _HANDOFF.pop(job.transfer_id, None)
        if buffer is None:
            raise TransferError(FailureReason.DATA_LOST, "no in-process handoff found")
        return buffer

    def _take_cuda_ipc(self, job: ReceiveJob, report: dict[str, Any]) -> torch.Tensor:
        return report["rebuild"](*report["args"])

    def _take_shm(self, job: ReceiveJob, report: dict[str, Any]) -> torch.Tensor:
        path = report["path"]
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise TransferError(FailureReason.DATA_LOST, f"shared-memory file {path} is gone") from None
        if size == 0:
            buffer = torch.empty(0, dtype=torch.uint8)
        else:
            buffer = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
        _unlink(path)  # the mapping stays valid; the name is no longer needed
        return buffer

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        with self._lock:
            path = self._paths.pop(transfer_id, None)
        if path is not None:
            _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # the other side removed it first: both sides unlink, whoever is first wins


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
