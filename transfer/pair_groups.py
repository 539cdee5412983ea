"""Two-rank torch.distributed process groups between endpoints, made on demand.

Why pairs and not one fleet-wide group: a torch process holds one default group, Ray's
collective groups fix their membership when they are created, and replicas come and go. A pair
group per (endpoint, peer endpoint) forms in milliseconds when the first transfer between them
needs it, is reused by later transfers in either direction, and is dropped by both sides when a
transfer on it fails (a timed-out gloo wait closes the connection anyway).

Rendezvous goes through Ray: the receiving side hosts a TCPStore (one per process, one key
prefix per pair) and returns its address in the transfer descriptor; the sending side joins.
Concurrent transfers between the same endpoints share one formation: the registry holds a pair
from the moment it begins forming, and later users wait for it.
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
_PAIRS: dict[tuple[str, str, str], "PairGroup"] = {}  # (my endpoint, peer endpoint, transport) -> pair
_STORES: dict[Any, Any] = {}  # "server": this process's TCPStore; (host, port): client connections


@dataclass(eq=False)
class PairGroup:
    """This side of a two-rank group. Usable once ``formed`` is set and ``error`` is None."""

    key: tuple[str, str, str]
    pair_id: str
    rank: int
    group: Any = None
    formed: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def transport(self) -> str:
        return self.key[2]

    @property
    def peer_rank(self) -> int:
        return 1 - self.rank

    def wait_formed(self, timeout_s: float) -> bool:
        """True once formed; False if still forming after ``timeout_s``; raises the formation error."""
        if not self.formed.wait(max(timeout_s, 0.0)):
            return False
        if self.error is not None:
            raise RuntimeError(f"pair {self.pair_id} failed to form: {self.error!r}")
        return True


def _timedelta(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)


def _server_store(host: str, timeout_s: float) -> tuple[Any, tuple[str, int]]:
    with _LOCK:
        server = _STORES.get("server")
        if server is None:
            server = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False, timeout=_timedelta(timeout_s))
            _STORES["server"] = server
        return server, (host, server.port)


def _client_store(address: tuple[str, int], timeout_s: float) -> Any:
    with _LOCK:
        client = _STORES.get(address)
        if client is None:
            client = dist.TCPStore(address[0], address[1], is_master=False, timeout=_timedelta(timeout_s))
            _STORES[address] = client
        return client


def host(me: str, peer: str, transport: str, host_ip: str, timeout_s: float) -> tuple[PairGroup, tuple[str, int], bool]:
    """Receiving side: the pair with ``peer`` and this process's store address.

    If there is none, begins one (this side is rank 1 and the host) and returns ``created=True``:
    the caller must then ``build`` it (blocks until the peer joins, so on a thread).
    """
    _, address = _server_store(host_ip, timeout_s)
    key = (me, peer, transport)
    with _LOCK:
        pair = _PAIRS.get(key)
        if pair is not None:
            return pair, address, False
        pair = _PAIRS[key] = PairGroup(key, f"pair-{uuid.uuid4().hex[:12]}", rank=1)
        return pair, address, True


def join(me: str, peer: str, transport: str, pair_id: str, address: tuple[str, int], host_ip: str,
         timeout_s: float) -> PairGroup:
    """Sending side: pair ``pair_id`` with ``peer``, joining the peer's store if this side lacks it."""
    key = (me, peer, transport)
    with _LOCK:
        pair = _PAIRS.get(key)
        created = pair is None or pair.pair_id != pair_id
        if created:
            pair = _PAIRS[key] = PairGroup(key, pair_id, rank=0)
    if created:
        build(pair, address, host_ip, timeout_s)
    elif not pair.wait_formed(timeout_s):
        raise RuntimeError(f"pair {pair_id} did not form within {timeout_s} s")
    return pair


def build(pair: PairGroup, address: tuple[str, int] | None, host_ip: str, timeout_s: float) -> None:
    """Construct the process group of ``pair`` (rank 1 hosts: ``address`` None). Sets ``formed``."""
    try:
        store = _server_store(host_ip, timeout_s)[0] if address is None else _client_store(tuple(address), timeout_s)
        prefixed = dist.PrefixStore(f"kvfleet/{pair.pair_id}", store)
        if pair.transport == "nccl":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = _timedelta(timeout_s)
            pair.group = dist.ProcessGroupNCCL(prefixed, pair.rank, 2, options)
        else:
            options = dist.ProcessGroupGloo._Options()
            options._timeout = _timedelta(timeout_s)
            options._devices = [dist.ProcessGroupGloo.create_device(hostname=host_ip)]
            pair.group = dist.ProcessGroupGloo(prefixed, pair.rank, 2, options)
    except BaseException as error:
        pair.error = error
        drop(pair)
        raise
    finally:
        pair.formed.set()


def drop(pair: PairGroup) -> None:
    """Forget ``pair`` (if it is still the registered one): the next transfer forms a new one."""
    with _LOCK:
        if _PAIRS.get(pair.key) is pair:
            del _PAIRS[pair.key]


def close(pair: PairGroup, pending_works: list[Any]) -> None:
    """Forget ``pair`` and end its pending operations (their buffers are safe to reuse after).

    gloo: a (1 ms) timed-out wait closes the connection and fails every pending operation.
    NCCL: the communicator is aborted.
    """
    drop(pair)
    if pair.group is None:
        return
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


def wait_work(work: Any, until: float, device: torch.device | None = None) -> None:
    """Wait for a send/recv until ``until`` (monotonic); raise RuntimeError if it failed or timed out.

    gloo only completes a send/recv inside ``wait`` (``is_completed`` stays False until then),
    and a wait that times out closes the pair's connection: after an error the pair is unusable
    and must be dropped on both sides.
    """
    work.wait(_timedelta(max(until - time.monotonic(), 0.001)))
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


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
