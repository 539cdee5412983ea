"""A pool of reusable transfer buffers, optionally registered with a transport (NIXL).

Registering memory (pinning it, handing keys to the NIC) and faulting in fresh pages are the
slow parts of moving a few hundred MiB; a pool does both once per buffer and then reuses it.
Buffers come in size classes (four per doubling, at least ``min_bytes``: at most 25% slack) so
that caches of similar size share them. The pool never holds more than ``max_bytes``: idle buffers are evicted (least
recently used first, deregistered) to make room, and if that is not enough ``acquire`` raises
CapacityError.

Quarantine: memory a dead-or-unresponsive peer might still write into is never handed out
again (``quarantine``); it stays allocated and is counted in ``stats()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from kvpool.errors import CapacityError

MIB = 1 << 20


@dataclass(eq=False)
class PooledBuffer:
    """One buffer of ``capacity_bytes``; ``view(n)`` is its first n bytes."""

    tensor: torch.Tensor
    registration: Any
    capacity_bytes: int
    in_use: bool = field(default=False)

    def view(self, nbytes: int) -> torch.Tensor:
        return self.tensor[:nbytes]

    @property
    def address(self) -> int:
        return self.tensor.data_ptr()


def size_class(nbytes: int, min_bytes: int) -> int:
    """Smallest class >= max(nbytes, min_bytes); classes between 2^k and 2^(k+1) are 1/4 apart."""
    size = max(nbytes, min_bytes, 1)
    step = max((1 << (size - 1).bit_length()) // 8, 1)
    return -(-size // step) * step


class BufferPool:
    """Reusable (optionally registered) uint8 buffers on one device. Thread-safe."""

    def __init__(self, device: torch.device | str, max_bytes: int, *, min_bytes: int = MIB,
                 register: Callable[[torch.Tensor], Any] | None = None,
                 deregister: Callable[[Any], None] | None = None,
                 allocate: Callable[[int], tuple[torch.Tensor, Any]] | None = None) -> None:
        """``register(tensor) -> registration`` / ``deregister(registration)``: e.g. NIXL. ``allocate(size)
        -> (tensor, registration)`` replaces both allocation and registration (e.g. shared memory)."""
        self.device = torch.device(device)
        self.max_bytes = max_bytes
        self.min_bytes = min_bytes
        self._register = register
        self._deregister = deregister
        self._allocate_with = allocate
        self._lock = threading.Lock()
        self._idle: "OrderedDict[int, PooledBuffer]" = OrderedDict()  # id -> buffer, LRU order
        self._all: dict[int, PooledBuffer] = {}
        self._held_bytes = 0
        self._quarantined_bytes = 0
        self._counters = {"registrations": 0, "deregistrations": 0, "reuses": 0, "acquires": 0}

    def acquire(self, nbytes: int) -> PooledBuffer:
        """A buffer of at least ``nbytes``; raise CapacityError if the pool cannot make room."""
        size = size_class(nbytes, self.min_bytes)
        with self._lock:
            self._counters["acquires"] += 1
            for key, buffer in reversed(self._idle.items()):  # most recently used first: warm pages
                if buffer.capacity_bytes == size:
                    del self._idle[key]
                    buffer.in_use = True
                    self._counters["reuses"] += 1
                    return buffer
            self._evict_until(size)
            self._held_bytes += size  # reserve before allocating outside the lock
        try:
            buffer = self._allocate(size)
        except BaseException:
            with self._lock:
                self._held_bytes -= size
            raise
        with self._lock:
            self._all[id(buffer)] = buffer
        return buffer

    def release(self, buffer: PooledBuffer) -> None:
        """Give ``buffer`` back for reuse."""
        with self._lock:
            if not buffer.in_use:
                return
            buffer.in_use = False
            self._idle[id(buffer)] = buffer

    def quarantine(self, buffer: PooledBuffer) -> None:
        """Never hand ``buffer`` out again (a peer may still write into it)."""
        with self._lock:
            self._all.pop(id(buffer), None)
            self._idle.pop(id(buffer), None)
            self._quarantined_bytes += buffer.capacity_bytes

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self._counters, "held_bytes": self._held_bytes, "idle_buffers": len(self._idle),
                    "buffers": len(self._all), "quarantined_bytes": self._quarantined_bytes}

    def close(self) -> None:
        """Deregister and drop every idle buffer (buffers in use are left to their users)."""
        with self._lock:
            idle, self._idle = list(self._idle.values()), OrderedDict()
            for buffer in idle:
                self._drop(buffer)

    def _evict_until(self, size: int) -> None:
        while self._held_bytes + size > self.max_bytes and self._idle:
            _, victim = self._idle.popitem(last=False)
            self._drop(victim)
        if self._held_bytes + size > self.max_bytes:
            raise CapacityError(f"transfer buffer pool on {self.device} holds {self._held_bytes} of {self.max_bytes} "
                                f"bytes in use and needs {size} more; raise the pool's max_bytes or wait for "
                                "running transfers to finish")

    def _drop(self, buffer: PooledBuffer) -> None:
        self._all.pop(id(buffer), None)
        self._held_bytes -= buffer.capacity_bytes
        if self._deregister is not None and buffer.registration is not None:
            self._deregister(buffer.registration)
            self._counters["deregistrations"] += 1

    def _allocate(self, size: int) -> PooledBuffer:
        if self._allocate_with is not None:
            tensor, registration = self._allocate_with(size)
            tensor.zero_()  # fault the pages in now, not in the middle of a transfer
            return PooledBuffer(tensor, registration, size, in_use=True)
        tensor = torch.empty(size, dtype=torch.uint8, device=self.device)
        tensor.zero_()  # fault the pages in now, not in the middle of a transfer
        registration = None
        if self._register is not None:
            registration = self._register(tensor)
            with self._lock:
                self._counters["registrations"] += 1
        return PooledBuffer(tensor, registration, size, in_use=True)
