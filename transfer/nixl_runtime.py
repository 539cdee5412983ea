"""This process's NIXL agent, its registered-memory pools and its notification board (nixl.py)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from transfer.buffer_pool import BufferPool
from transfer.process import PROCESS_TOKEN

if TYPE_CHECKING:
    from transfer.nixl_config import NixlConfig

NOTIF_PREFIX = b"kvfleet|"
_RUNTIME: "NixlRuntime | None" = None
_RUNTIME_LOCK = threading.Lock()


def memory_kind(device: torch.device) -> tuple[str, int]:
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
                if message.startswith(NOTIF_PREFIX):
                    _, tid, chunk = message.decode().split("|")
                    self._arrived[tid].add(int(chunk))
                    self._seen_at.setdefault(tid, now)
        for tid in [t for t, seen in self._seen_at.items() if now - seen > 600]:  # late chunks of dropped transfers
            self._forget_locked(tid)

    def _forget_locked(self, transfer_id: str) -> None:
        self._arrived.pop(transfer_id, None)
        self._seen_at.pop(transfer_id, None)


class NixlRuntime:
    """This process's NIXL agent, its registered buffer pools and what it knows of remote agents."""

    def __init__(self, config: "NixlConfig") -> None:
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

    def pool(self, device: torch.device, config: "NixlConfig") -> BufferPool:
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


def runtime(config: "NixlConfig") -> NixlRuntime:
    """The process-wide NIXL runtime (created on first use)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = NixlRuntime(config)
        return _RUNTIME
