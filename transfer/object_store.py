"""object_store: the Ray object store, the fallback that works wherever Ray runs.

The source ``ray.put``s the payload (CUDA payloads are staged through host memory) and returns
the ObjectRef in its report; the target ``ray.get``s it (zero-copy from the node's shared memory
when both are on one node, a pull over Ray's object transfer otherwise). The source owns the
object, so if it dies before the target has the bytes, Ray reports the owner dead: PEER_DIED.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import torch

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.errors import TransferAborted, TransferError, TransferUnavailableError
from transfer.states import FailureReason, TransferId

_POLL_S = 0.05


class ObjectStoreConfig(BackendConfig):
    pass


class ObjectStoreSender(Sender):
    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._held: dict[str, Any] = {}
        self._lock = threading.Lock()

    def send(self, job: SendJob) -> dict[str, Any]:
        import ray

        host = job.payload if job.payload.device.type == "cpu" else job.payload.cpu()
        array = host[:0].numpy() if job.drop else host.numpy()
        ref = ray.put(array)
        with self._lock:
            self._held[job.transfer_id] = ref  # keep the object alive until the target has it
        job.progress(job.payload.numel())
        return {"ref": [ref]}  # nested: Ray passes the ref itself, not its value

    def release(self, transfer_id: TransferId) -> None:
        with self._lock:
            self._held.pop(transfer_id, None)


class ObjectStoreReceiver(Receiver):
    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        return {}

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        import ray
        from ray import exceptions as rex

        ref = report["ref"][0]
        while True:  # the pull happens here: bounded by the ticket's deadline, not the grace period
            if job.cancelled.is_set():
                raise TransferAborted(job.transfer_id)
            left = job.deadline - time.monotonic()
            if left <= 0:
                raise TransferError(FailureReason.TIMEOUT, "object did not arrive before the deadline")
            ready, _ = ray.wait([ref], timeout=min(left, _POLL_S), fetch_local=True)
            if ready:
                break
        try:
            array = ray.get(ref, timeout=max(job.deadline - time.monotonic(), 0.001))
        except (rex.OwnerDiedError, rex.ObjectLostError, rex.ObjectFetchTimedOutError) as error:
            raise TransferError(FailureReason.PEER_DIED, f"the source's object is gone: {type(error).__name__}") from None
        except rex.GetTimeoutError:
            raise TransferError(FailureReason.TIMEOUT, "object did not arrive before the deadline") from None
        if array.size != job.nbytes:
            raise TransferError(FailureReason.DATA_LOST, f"{array.size} of {job.nbytes} bytes arrived")
        with warnings.catch_warnings():  # the shared-memory view is read-only; we never write to it
            warnings.simplefilter("ignore", UserWarning)
            buffer = torch.from_numpy(array)
        if job.device.type != "cpu":
            buffer = buffer.to(job.device)
        holder = [array]
        return LentBuffer(buffer, holder.clear)

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        pass


class ObjectStoreBackend(TransferBackend):
    name = "object_store"
    Config = ObjectStoreConfig
    sender_cls = ObjectStoreSender
    receiver_cls = ObjectStoreReceiver

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        if not (source.get("in_ray") and target.get("in_ray")):
            raise TransferUnavailableError("object_store needs both endpoints in a Ray cluster (ray.init); "
                                           "use the fake or local backend for in-process endpoints")
        return Route(self.name, self.config.model_dump(mode="json"))
