"""collective: point-to-point send/recv over torch.distributed; gloo on CPU, NCCL on GPU.

Choice of API. Ray 2.60 offers ``ray.util.collective`` and Ray Direct Transport (RDT, which
rides on the same collective groups for NCCL/GLOO). Neither fits serving migrations here:

- their NCCL backend needs ``cupy``, which is not in kvfleet's pinned dependencies;
- an actor can belong to one group per backend, with membership fixed at creation, while
  replicas of a fleet come and go (every join would re-form the whole group on every member);
- ``ray.util.collective.send/recv`` block without a per-call timeout (the torch default is
  30 min) and cannot be aborted, and RDT's collective transports declare
  ``can_abort_transport() == False``; a stuck peer would hold a transfer thread for half an hour.

So this backend uses Ray only for what it is good at here (rendezvous and orchestration: the
target's TCPStore address travels in the transfer descriptor) and torch.distributed's own
``ProcessGroupGloo`` / ``ProcessGroupNCCL`` objects, one two-rank group per pair of endpoints
and direction, made on first use (pair_groups.py). Sends/recvs are tagged, chunked, waited with the ticket's
deadline, and a group that saw any failure is dropped and re-formed by the next transfer.

Devices: gloo moves CPU tensors only, so CUDA payloads are staged through host memory; NCCL
moves CUDA tensors (both endpoints on CUDA). NCCL has no tags, so transfers between one pair are
serialised by the orchestrating process (``Route.exclusive``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field

from transfer import pair_groups
from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.buffer_pool import MIB, BufferPool, PooledBuffer
from transfer.errors import TransferAborted, TransferError, TransferUnavailableError
from transfer.pair_groups import PairGroup
from transfer.states import FailureReason, TransferId


class CollectiveConfig(BackendConfig):
    """``transport``: auto = NCCL when both endpoints are on CUDA, else gloo. ``op_timeout_s``:
    torch.distributed timeout of one operation (bounds a stuck op even if nobody waits)."""

    transport: Literal["auto", "gloo", "nccl"] = "auto"
    chunk_bytes: int = Field(default=64 * MIB, gt=0)
    op_timeout_s: float = Field(default=60.0, gt=0)
    pool_max_bytes: int = Field(default=4 << 30, gt=0)


def _chunks(nbytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk_bytes, nbytes)) for start in range(0, nbytes, chunk_bytes)]


def _device(transport: str, preferred: torch.device) -> torch.device:
    if transport == "nccl":
        return preferred if preferred.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@dataclass
class _Receive:
    pair: PairGroup
    pool: BufferPool
    buffer: PooledBuffer
    chunks: list[tuple[int, int]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)  # recvs posted (or setup failed)
    works: list[Any] = field(default_factory=list)
    waited: int = 0  # works whose wait() returned (gloo completes a recv only inside wait)
    error: BaseException | None = None
    received: bool = False
    abandoned: bool = False


class CollectiveReceiver(Receiver):
    """Posts the recvs at prepare time (so sends never wait for the target's Python thread).

    A receive that fails, or is aborted before its data arrived, closes its pair (gloo closes a
    pair on any timed-out wait anyway): pending recvs end, the buffer is reused, and the next
    transfer with that peer forms a fresh pair. Other transfers running on the closed pair fail
    with BACKEND_ERROR and can be retried.
    """

    config: CollectiveConfig

    def __init__(self, config: CollectiveConfig) -> None:
        super().__init__(config)
        self._receives: dict[str, _Receive] = {}
        self._pools: dict[str, BufferPool] = {}
        self._tags: dict[str, int] = {}
        self._lock = threading.Lock()

    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        transport, host_ip = self.config.transport, job.target["ip"]
        device = _device(transport, job.device)
        pair, address, created = pair_groups.host(job.target["endpoint_id"], job.source["endpoint_id"], transport,
                                                  host_ip, self.config.op_timeout_s)
        pool = self._pool(device)
        receive = _Receive(pair, pool, pool.acquire(job.nbytes), _chunks(job.nbytes, self.config.chunk_bytes))
        tag_base = self._next_tag_base(pair.pair_id, len(receive.chunks))
        with self._lock:
            self._receives[job.transfer_id] = receive
        threading.Thread(target=self._post, args=(receive, created, host_ip, tag_base, device), daemon=True,
                         name=f"kvfleet-recv-{job.transfer_id}").start()
        return {"transport": transport, "pair_id": pair.pair_id, "store": list(address), "tag_base": tag_base,
                "formed": pair.formed.is_set()}

    def _post(self, receive: _Receive, created: bool, host_ip: str, tag_base: int, device: torch.device) -> None:
        """Form the pair if this receive began it (blocks until the source joins), then post the recvs."""
        pair = receive.pair
        try:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            if created:
                pair_groups.build(pair, None, host_ip, self.config.op_timeout_s)
            elif not pair.wait_formed(self.config.op_timeout_s):
                raise RuntimeError(f"pair {pair.pair_id} did not form within {self.config.op_timeout_s} s")
            with receive.lock:
                abandoned = receive.abandoned
            if not abandoned:  # posting may block (NCCL forms its communicator here): no lock held
                for index, (start, end) in enumerate(receive.chunks):
                    receive.works.append(pair.group.recv([receive.buffer.tensor[start:end]], pair.peer_rank,
                                                         tag_base + index))
        except BaseException as error:  # reported by finish(); this thread has no caller
            receive.error = error
        finally:
            with receive.lock:
                receive.ready.set()
                abandoned = receive.abandoned
            if abandoned:  # aborted while forming: abort() left the cleanup to us
                self._retire(receive, source_quiesced=True)

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        with self._lock:
            receive = self._receives[job.transfer_id]
        if not receive.ready.wait(max(arrival_deadline - time.monotonic(), 0.0)):
            raise self._missing(job, "the pair group with the source did not form")
        if receive.error is not None:
            raise TransferError(FailureReason.BACKEND_ERROR, f"{receive.pair.transport} pair setup failed: "
                                f"{receive.error!r}")
        device = receive.buffer.tensor.device
        for index, work in enumerate(receive.works):
            if job.cancelled.is_set():
                raise TransferAborted(job.transfer_id)
            try:
                pair_groups.wait_work(work, arrival_deadline, device)
            except RuntimeError as error:
                receive.waited = index + 1
                if "closed" in str(error).lower():
                    raise TransferError(FailureReason.BACKEND_ERROR, f"chunk {index}: {error} (the source dropped "
                                        "or lost the connection)") from None
                raise self._missing(job, f"{index} of {len(receive.works)} chunks arrived") from None
            receive.waited = index + 1
        receive.received = True
        view = receive.buffer.view(job.nbytes)
        if view.device != job.device:
            view = view.to(job.device)  # gloo lands on the host; the target wants its device
        return LentBuffer(view, lambda: self.abort(job.transfer_id, source_quiesced=True))

    @staticmethod
    def _missing(job: ReceiveJob, what: str) -> TransferError:
        if time.monotonic() >= job.deadline:
            return TransferError(FailureReason.TIMEOUT, f"{what} before the deadline")
        return TransferError(FailureReason.DATA_LOST, f"{what}; the source reported all of them sent")

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        with self._lock:
            receive = self._receives.pop(transfer_id, None)
        if receive is None:
            return
        if receive.received:
            receive.pool.release(receive.buffer)
            return
        with receive.lock:
            receive.abandoned = True
            posted = receive.ready.is_set()
        if posted:  # else the posting thread retires it when the formation ends
            self._retire(receive, source_quiesced)

    def _retire(self, receive: _Receive, source_quiesced: bool) -> None:
        """End a receive that did not get its data: close its pair (ending pending recvs), free the buffer."""
        if receive.works:
            pair_groups.close(receive.pair, receive.works[receive.waited:])
        if receive.pair.transport == "nccl" and receive.works and not source_quiesced:
            receive.pool.quarantine(receive.buffer)  # an NCCL kernel might still be writing
        else:
            receive.pool.release(receive.buffer)

    def _pool(self, device: torch.device) -> BufferPool:
        with self._lock:
            pool = self._pools.get(str(device))
            if pool is None:
                pool = self._pools[str(device)] = BufferPool(device, self.config.pool_max_bytes)
            return pool

    def _next_tag_base(self, pair_id: str, chunks: int) -> int:
        """Tags unique per pair (gloo matches by tag): concurrent transfers never cross."""
        with self._lock:
            base = self._tags.get(pair_id, 0)
            self._tags[pair_id] = (base + chunks + 1) % (1 << 30)
            return base

    def stats(self) -> dict[str, Any]:
        with self._lock:
            pools = dict(self._pools)
        return {device: pool.stats() for device, pool in pools.items()}


class CollectiveSender(Sender):
    config: CollectiveConfig

    def send(self, job: SendJob) -> dict[str, Any]:
        desc = job.descriptor
        transport, peer = desc["transport"], job.target["endpoint_id"]
        device = _device(transport, job.payload.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            pair = pair_groups.join(job.source["endpoint_id"], peer, transport, desc["pair_id"], tuple(desc["store"]),
                                    job.source["ip"], max(min(self.config.op_timeout_s, job.remaining_s()), 0.1),
                                    host_formed=desc["formed"])
        except RuntimeError as error:
            raise TransferError(FailureReason.BACKEND_ERROR, f"could not join {transport} pair with {peer}: "
                                f"{error}") from None
        data = job.payload.to(device)  # gloo: staged through host memory; nccl: onto this GPU
        chunks = _chunks(data.numel(), self.config.chunk_bytes)
        works = []
        for index, (start, end) in enumerate(chunks):
            job.progress(start)
            if not job.drop:
                works.append(pair.group.send([data[start:end]], pair.peer_rank, desc["tag_base"] + index))
        for work in works:
            try:
                pair_groups.wait_work(work, job.deadline, device)
            except RuntimeError as error:  # the pair is closed now: forget it, and tell its host
                pair_groups.drop(pair, tell_host=True)
                reason = FailureReason.TIMEOUT if job.remaining_s() <= 0 else FailureReason.BACKEND_ERROR
                raise TransferError(reason, f"{transport} send to {peer} failed: {error}") from None
        job.progress(data.numel())
        return {"chunks": len(chunks)}


class CollectiveBackend(TransferBackend):
    name = "collective"
    Config = CollectiveConfig
    sender_cls = CollectiveSender
    receiver_cls = CollectiveReceiver

    @classmethod
    def availability(cls) -> str | None:
        return pair_groups.transports()["gloo"]

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        for side, info in (("source", source), ("target", target)):
            reason = info.get("backends", {}).get(self.name)
            if reason is not None:
                raise TransferUnavailableError(f"collective is unavailable on the {side}: {reason}")
        both_cuda = source["device"].startswith("cuda") and target["device"].startswith("cuda")
        transport = self.config.transport
        if transport == "auto":
            transport = "nccl" if both_cuda else "gloo"
        if transport == "nccl" and not both_cuda:
            raise TransferUnavailableError("NCCL needs both endpoints on CUDA; use transport='gloo' (stages through "
                                           "host memory) or another backend")
        exclusive = "|".join(sorted((source["endpoint_id"], target["endpoint_id"]))) if transport == "nccl" else None
        return Route(self.name, self.config.model_copy(update={"transport": transport}).model_dump(mode="json"),
                     exclusive=exclusive)
