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
from collections import defaultdict
from typing import Any

import torch
from pydantic import Field

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.buffer_pool import MIB, BufferPool, PooledBuffer
from transfer.endpoint import PROCESS_TOKEN
from transfer.errors import TransferAborted, TransferError, TransferUnavailableError
from transfer.states import FailureReason, TransferId

_NOTIF_PREFIX = b"kvfleet|"
_RUNTIME: "_NixlRuntime | None" = None
_RUNTIME_LOCK = threading.Lock()


class NixlConfig(BackendConfig):
    """``chunk_bytes``: size of one WRITE (copy/wire overlap, progress, abort granularity).
    ``pool_max_bytes``: registered memory per device and process."""

    ucx_backend: str = "UCX"
    chunk_bytes: int = Field(default=16 * MIB, gt=0)
    pool_max_bytes: int = Field(default=4 << 30, gt=0)
    min_buffer_bytes: int = Field(default=MIB, gt=0)


def _mem(device: torch.device) -> tuple[str, int]:
    """NIXL memory type and device id of ``device``."""
    if device.type == "cuda":
        return "VRAM", device.index if device.index is not None else torch.cuda.current_device()
    return "DRAM", 0


class _NotifBoard:
    """Collects chunk notifications for all transfers of this process's agent."""

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self._lock = threading.Lock()
        self._arrived: dict[str, set[int]] = defaultdict(set)
        self._seen_at: dict[str, float] = {}

    def wait(self, transfer_id: str, count: int, until: float, cancelled: threading.Event) -> int:
        """Wait until ``count`` chunks of ``transfer_id`` arrived or ``until``; return how many did."""
        delay_s = 0.0001
        while True:
            with self._lock:
                self._pump()
                arrived = len(self._arrived.get(transfer_id, ()))
            if arrived >= count or time.monotonic() >= until:
                return arrived
            if cancelled.wait(delay_s):
                raise TransferAborted(transfer_id)
            delay_s = min(delay_s * 2, 0.002)

    def forget(self, transfer_id: str) -> None:
        with self._lock:
            self._forget_locked(transfer_id)

    def _pump(self) -> None:
        now = time.monotonic()
        for messages in self._agent.get_new_notifs().values():
            for message in messages:
                if message.startswith(_NOTIF_PREFIX):
                    _, tid, chunk = message.decode().split("|")
                    self._arrived[tid].add(int(chunk))
                    self._seen_at.setdefault(tid, now)
        for tid in [t for t, seen in self._seen_at.items() if now - seen > 600]:  # late chunks of dropped transfers
            self._forget_locked(tid)

    def _forget_locked(self, transfer_id: str) -> None:
        self._arrived.pop(transfer_id, None)
        self._seen_at.pop(transfer_id, None)


class _NixlRuntime:
    """This process's NIXL agent, its registered buffer pools and what it knows of remote agents."""

    def __init__(self, config: NixlConfig) -> None:
        from nixl._api import nixl_agent, nixl_agent_config, nixl_thread_sync_t

        self.name = f"kvfleet-{PROCESS_TOKEN[:16]}"
        # several transfer threads share the agent: let NIXL serialise what must be serialised
        settings = nixl_agent_config(backends=[config.ucx_backend], sync_mode=nixl_thread_sync_t.NIXL_THREAD_SYNC_STRICT)
        self.agent = nixl_agent(self.name, settings)
        self.board = _NotifBoard(self.agent)
        self._lock = threading.Lock()
        self._pools: dict[str, BufferPool] = {}
        self._generation = 0
        self._remote_generation: dict[str, int] = {}

    def pool(self, device: torch.device, config: NixlConfig) -> BufferPool:
        with self._lock:
            pool = self._pools.get(str(device))
            if pool is None:
                pool = BufferPool(device, config.pool_max_bytes, min_bytes=config.min_buffer_bytes,
                                  register=self._register, deregister=self._deregister)
                self._pools[str(device)] = pool
            return pool

    def metadata(self) -> tuple[bytes, int]:
        with self._lock:
            return self.agent.get_agent_metadata(), self._generation

    def ensure_remote(self, name: str, metadata: bytes, generation: int) -> None:
        """Load (or reload) a remote agent's metadata unless this generation is already loaded."""
        if name == self.name:
            return  # loopback: NIXL refuses to load its own metadata and does not need it
        with self._lock:
            if self._remote_generation.get(name) == generation:
                return
            self.agent.add_remote_agent(metadata)
            self._remote_generation[name] = generation

    def stats(self) -> dict[str, Any]:
        """Registered-memory pools of this process, by device."""
        with self._lock:
            pools = dict(self._pools)
        return {device: pool.stats() for device, pool in pools.items()}

    def _register(self, tensor: torch.Tensor) -> Any:
        registration = self.agent.register_memory(tensor)
        with self._lock:
            self._generation += 1
        return registration

    def _deregister(self, registration: Any) -> None:
        self.agent.deregister_memory(registration)
        with self._lock:
            self._generation += 1


def runtime(config: NixlConfig) -> _NixlRuntime:
    """The process-wide NIXL runtime (created on first use)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = _NixlRuntime(config)
        return _RUNTIME


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

    def _post(self, rt: _NixlRuntime, job: SendJob, staging: PooledBuffer, index: int, start: int, end: int) -> Any:
        desc, payload = job.descriptor, job.payload
        staging.tensor[start:end].copy_(payload[start:end])
        if payload.device.type == "cuda":
            torch.cuda.current_stream(payload.device).synchronize()  # NIXL reads outside stream order
        mem, dev = _mem(payload.device)
        local = rt.agent.get_xfer_descs([(staging.address + start, end - start, dev)], mem)
        remote = rt.agent.get_xfer_descs([(desc["address"] + start, end - start, desc["device_id"])], desc["mem_type"])
        notif = _NOTIF_PREFIX + f"{job.transfer_id}|{index}".encode()
        handle = rt.agent.initialize_xfer("WRITE", local, remote, desc["agent"], notif)
        if rt.agent.transfer(handle) == "ERR":
            handle.release()
            raise TransferError(FailureReason.BACKEND_ERROR, f"NIXL refused to post chunk {index} to {desc['agent']}")
        return handle

    def _wait(self, rt: _NixlRuntime, job: SendJob, handles: list[Any]) -> None:
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

    def _settle(self, rt: _NixlRuntime, staging: PooledBuffer, handles: list[Any]) -> None:
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
        mem, dev = _mem(job.device)
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
