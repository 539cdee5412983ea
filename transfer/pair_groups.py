"""Two-rank torch.distributed process groups between endpoint processes, made on demand.

Why pairs and not one fleet-wide group: a torch process holds one default group, Ray's
collective groups fix their membership when they are created, and replicas come and go. A pair
group per (this endpoint's process, peer endpoint) forms in milliseconds when the first transfer
between them needs it, is reused by later transfers in either direction, and is simply dropped
(both sides) when a transfer on it fails, e.g. after a gloo timeout closed its connection.

Rendezvous goes through Ray: the receiving side hosts a TCPStore (one per process, one key
prefix per pair) and returns its address in the transfer descriptor; the sending side connects.
Gloo runs on CPU tensors, NCCL on CUDA tensors of the current device.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

_LOCK = threading.Lock()
_PAIRS: dict[tuple[str, str], "PairGroup"] = {}  # (peer endpoint id, transport) -> group
_STORE: dict[str, Any] = {}  # "server": this process's TCPStore; (host, port): client connections


@dataclass
class PairGroup:
    """A two-rank group with one peer. ``peer_rank`` is 1 - ``rank``."""

    pair_id: str
    transport: str
    rank: int
    group: Any
    lock: threading.Lock = field(default_factory=threading.Lock)  # NCCL: one operation sequence at a time

    @property
    def peer_rank(self) -> int:
        return 1 - self.rank


def _timedelta(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)


def host_store(host: str, timeout_s: float) -> tuple[Any, tuple[str, int]]:
    """This process's TCPStore server (created on first use) and its address."""
    with _LOCK:
        server = _STORE.get("server")
        if server is None:
            server = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=_timedelta(timeout_s))
            _STORE["server"] = server
        return server, (host, server.port)


def _client_store(address: tuple[str, int], timeout_s: float) -> Any:
    with _LOCK:
        client = _STORE.get(tuple(address))
        if client is None:
            client = dist.TCPStore(address[0], address[1], is_master=False, timeout=_timedelta(timeout_s))
            _STORE[tuple(address)] = client
        return client


def get(peer: str, transport: str) -> PairGroup | None:
    with _LOCK:
        return _PAIRS.get((peer, transport))


def drop(peer: str, transport: str, pair_id: str | None = None) -> None:
    """Forget the group with ``peer`` (only if it is ``pair_id``, when given)."""
    with _LOCK:
        pair = _PAIRS.get((peer, transport))
        if pair is not None and (pair_id is None or pair.pair_id == pair_id):
            del _PAIRS[(peer, transport)]


def new_pair_id() -> str:
    return f"pair-{uuid.uuid4().hex[:12]}"


def form(peer: str, transport: str, pair_id: str, rank: int, store_address: tuple[str, int] | None,
         host: str, op_timeout_s: float) -> PairGroup:
    """Build this side of pair ``pair_id`` (blocks until the peer builds its side).

    Rank 1 hosts (``store_address`` None); rank 0 connects to the host's ``store_address``.
    """
    if store_address is None:
        store, _ = host_store(host, op_timeout_s)
    else:
        store = _client_store(store_address, op_timeout_s)
    prefixed = dist.PrefixStore(f"kvfleet/{pair_id}", store)
    if transport == "nccl":
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = _timedelta(op_timeout_s)
        group = dist.ProcessGroupNCCL(prefixed, rank, 2, options)
    else:
        options = dist.ProcessGroupGloo._Options()
        options._timeout = _timedelta(op_timeout_s)
        options._devices = [dist.ProcessGroupGloo.create_device(hostname=host)]
        group = dist.ProcessGroupGloo(prefixed, rank, 2, options)
    pair = PairGroup(pair_id, transport, rank, group)
    with _LOCK:
        _PAIRS[(peer, transport)] = pair
    return pair


def wait_work(work: Any, until: float, device: torch.device | None = None) -> None:
    """Wait for a send/recv until ``until`` (monotonic); raise RuntimeError if it failed or timed out.

    gloo only completes a send/recv inside ``wait`` (``is_completed`` stays False until then),
    and a wait that times out closes the pair's connection: after an error the pair is unusable
    and must be dropped on both sides.
    """
    work.wait(_timedelta(max(until - time.monotonic(), 0.001)))
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def close(pair: PairGroup, pending_works: list[Any]) -> None:
    """Forget ``pair`` and end its pending operations (their buffers are safe to reuse after).

    gloo: a (1 ms) timed-out wait closes the connection and fails every pending operation.
    NCCL: the communicator is aborted.
    """
    drop_pair(pair)
    if pair.transport == "nccl":
        abort = getattr(pair.group, "abort", None)
        if abort is not None:
            abort()
        return
    for work in pending_works:
        try:
            work.wait(_timedelta(0.001))
        except RuntimeError:
            pass  # expected: the wait times out (closing the pair) or reports it closed


def drop_pair(pair: PairGroup) -> None:
    with _LOCK:
        for key, known in list(_PAIRS.items()):
            if known is pair:
                del _PAIRS[key]


def transports() -> dict[str, str | None]:
    """Which transports this process can run: None if usable, else why not."""
    gloo = None if dist.is_available() and dist.is_gloo_available() else "torch.distributed has no gloo"
    if not torch.cuda.is_available():
        nccl = "no CUDA device in this process"
    elif not dist.is_nccl_available():
        nccl = "torch was built without NCCL"
    else:
        nccl = None
    return {"gloo": gloo, "nccl": nccl}
