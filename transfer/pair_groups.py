"""Two-rank torch.distributed process groups between endpoints, made on demand.

Why pairs and not one fleet-wide group: a torch process holds one default group, Ray's
collective groups fix their membership when they are created, and replicas come and go. A pair
group per (receiving endpoint, sending endpoint) forms in milliseconds when the first transfer
between them needs it, is reused by later transfers in that direction, and is dropped when a
transfer on it fails (a timed-out gloo wait closes the connection anyway).

Rendezvous goes through Ray: the receiving side hosts a TCPStore (one per process, one key
prefix per pair) and returns its address in the transfer descriptor; the sending side joins the
pair by its id. Receivers only ever propose pairs they host, so each direction between two
endpoints has its own pair and both sides of a transfer always agree on it. Concurrent transfers
share a formation: the registry holds a pair from the moment it begins forming.

Failures: a side that sees a pair break forgets it; a sender also marks it dead in the host's
store, so that the host does not propose it again. A receiver never proposes a pair it retired.
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
_PAIRS: dict[tuple[str, str, str, str], "PairGroup"] = {}  # (me, peer, transport, pair id) -> pair
_CURRENT: dict[tuple[str, str, str], str] = {}  # (me, peer, transport) -> id of the pair receivers use
_STORES: dict[Any, Any] = {}  # "server": this process's TCPStore; (host, port): client connections


@dataclass(eq=False)
class PairGroup:
    """This side of a two-rank group. Usable once ``formed`` is set and ``error`` is None."""

    key: tuple[str, str, str]  # (me, peer, transport)
    pair_id: str
    rank: int
    address: tuple[str, int] | None = None  # the host's store (rank 0 side)
    group: Any = None
    store: Any = None  # this formation's own store connection (see _connect)
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
            client = _STORES[address] = _connect(address, timeout_s)
        return client


def _connect(address: tuple[str, int], timeout_s: float) -> Any:
    """A new client connection to the store at ``address``.

    Each pair formation rendezvouses through a connection of its own (``build``): a TCPStore
    object runs one operation at a time (a blocking ``get`` holds its lock until the key appears),
    so formations sharing one would wait on each other - two pairs forming at once in one process
    (each direction between two endpoints) then deadlock until the timeout, each side's ``get``
    blocking the ``set`` the other formation needs."""
    return dist.TCPStore(address[0], address[1], is_master=False, timeout=_timedelta(timeout_s))


def _dead_key(pair_id: str) -> str:
    return f"kvfleet/{pair_id}/dead"


def host(me: str, peer: str, transport: str, host_ip: str, timeout_s: float) -> tuple[PairGroup, tuple[str, int], bool]:
    """Receiving side: the pair this endpoint hosts for ``peer`` and this process's store address.

    If there is none (or its sender marked it dead), begins one (this side is rank 1) and returns
    ``created=True``: the caller must then ``build`` it (blocks until the peer joins: on a thread).
    """
    server, address = _server_store(host_ip, timeout_s)
    key = (me, peer, transport)
    with _LOCK:
        current = _CURRENT.get(key)
        pair = _PAIRS.get((*key, current)) if current else None
    if pair is not None and pair.formed.is_set() and server.check([_dead_key(pair.pair_id)]):
        drop(pair)
        pair = None
    if pair is not None:
        return pair, address, False
    with _LOCK:
        pair = PairGroup(key, f"pair-{uuid.uuid4().hex[:12]}", rank=1)
        _PAIRS[(*key, pair.pair_id)] = pair
        _CURRENT[key] = pair.pair_id
    return pair, address, True


def join(me: str, peer: str, transport: str, pair_id: str, address: tuple[str, int], host_ip: str,
         timeout_s: float, host_formed: bool) -> PairGroup:
    """Sending side: pair ``pair_id`` with ``peer``, joining the peer's store if this side lacks it.

    ``host_formed``: the host's side had already formed when it proposed the pair; if this side
    does not know it, this side lost it (dropped after a failure) and joining would hang: the
    pair is marked dead instead and RuntimeError raised (the next transfer forms a new one).
    """
    key = (me, peer, transport)
    with _LOCK:
        pair = _PAIRS.get((*key, pair_id))
        created = pair is None
        if created and not host_formed:
            pair = _PAIRS[(*key, pair_id)] = PairGroup(key, pair_id, rank=0, address=tuple(address))
    if created and host_formed:
        _mark_dead(pair_id, tuple(address), timeout_s)
        raise RuntimeError(f"pair {pair_id} was dropped by this side after a failure; marked it dead, retry")
    if created:
        build(pair, address, host_ip, timeout_s)
    elif not pair.wait_formed(timeout_s):
        raise RuntimeError(f"pair {pair_id} did not form within {timeout_s} s")
    return pair


def _mark_dead(pair_id: str, address: tuple[str, int], timeout_s: float) -> None:
    _client_store(address, timeout_s).set(_dead_key(pair_id), b"1")


def build(pair: PairGroup, address: tuple[str, int] | None, host_ip: str, timeout_s: float) -> None:
    """Construct the process group of ``pair`` (rank 1 hosts: ``address`` None). Sets ``formed``."""
    try:
        rendezvous = _server_store(host_ip, timeout_s)[1] if address is None else tuple(address)
        pair.store = _connect(rendezvous, timeout_s)  # lives with the pair (gloo keeps the store)
        prefixed = dist.PrefixStore(f"kvfleet/{pair.pair_id}", pair.store)
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


def drop(pair: PairGroup, *, tell_host: bool = False) -> None:
    """Forget ``pair``: transfers that need a pair with that peer form a new one.

    ``tell_host`` (sending side): also mark it dead in the host's store (best effort: if the host
    is unreachable it is gone or will fail on the pair by itself).
    """
    if tell_host and pair.address is not None:
        try:
            _mark_dead(pair.pair_id, pair.address, 5.0)
        except RuntimeError:
            pass  # the host's store is unreachable: its process is gone or cut off
    with _LOCK:
        if _PAIRS.get((*pair.key, pair.pair_id)) is pair:
            del _PAIRS[(*pair.key, pair.pair_id)]
        if _CURRENT.get(pair.key) == pair.pair_id:
            del _CURRENT[pair.key]


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
