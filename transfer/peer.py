"""Peers: how the orchestrator calls an endpoint, whether it is a Ray actor or a local object.

``as_peer(x)`` accepts a Ray ``ActorHandle`` of an actor that mixes in ``TransferEndpoint``, or an
in-process ``TransferEndpoint`` object (tests, single-process tools, the control plane's own
unit tests). Every call returns a ``PendingCall``; waiting on it maps transport failures onto the
transfer vocabulary: a dead actor is ``TransferError(PEER_DIED)``, an error raised inside the
endpoint comes back as the original exception.
"""

from __future__ import annotations

import concurrent.futures
import threading
from abc import ABC, abstractmethod
from typing import Any

from kvpool.errors import KVFleetError
from transfer.endpoint import TransferEndpoint
from transfer.errors import SimulatedPeerDeath, TransferError
from transfer.states import FailureReason

_LOCAL_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="kvfleet-local-peer")


class PendingCall(ABC):
    """An endpoint method call in flight."""

    @abstractmethod
    def done(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds; True once the call has finished (ok or not)."""

    @abstractmethod
    def result(self) -> Any:
        """The return value of a finished call; raises what the call raised (mapped, see module doc)."""


class Peer(ABC):
    """One endpoint as seen by the orchestrator. ``key`` identifies it for caches.

    ``stable_info``: its ``transfer_info()`` never changes (an actor's node and process don't),
    so the orchestrator may cache it.
    """

    key: str
    stable_info: bool = True

    @abstractmethod
    def call(self, method: str, *args: Any, **kwargs: Any) -> PendingCall:
        """Start ``endpoint.<method>(*args, **kwargs)`` and return without waiting."""


class _RayCall(PendingCall):
    def __init__(self, ref: Any, peer_key: str) -> None:
        self._ref = ref
        self._peer_key = peer_key

    def done(self, timeout_s: float) -> bool:
        import ray

        ready, _ = ray.wait([self._ref], timeout=max(timeout_s, 0.0))
        return bool(ready)

    def result(self) -> Any:
        import ray
        from ray import exceptions as rex

        try:
            return ray.get(self._ref)
        except rex.RayTaskError as error:
            if isinstance(error.cause, KVFleetError):
                raise error.cause from None
            raise TransferError(FailureReason.BACKEND_ERROR, f"endpoint {self._peer_key} raised: {error}") from error
        except (rex.RayActorError, rex.WorkerCrashedError, rex.OwnerDiedError, rex.ObjectLostError) as error:
            raise TransferError(FailureReason.PEER_DIED, f"endpoint {self._peer_key} died: "
                                f"{type(error).__name__}") from error


class RayPeer(Peer):
    """A Ray actor that mixes in TransferEndpoint (and declares its concurrency groups)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.key = f"actor:{handle._actor_id.hex()}"

    def call(self, method: str, *args: Any, **kwargs: Any) -> PendingCall:
        return _RayCall(getattr(self._handle, method).remote(*args, **kwargs), self.key)


class _LocalCall(PendingCall):
    def __init__(self, future: concurrent.futures.Future, peer: "LocalPeer") -> None:
        self._future = future
        self._peer = peer

    def done(self, timeout_s: float) -> bool:
        try:
            self._future.exception(timeout=max(timeout_s, 0.0))
        except concurrent.futures.TimeoutError:
            return False
        return True

    def result(self) -> Any:
        try:
            return self._future.result()
        except SimulatedPeerDeath as error:
            raise TransferError(FailureReason.PEER_DIED, f"endpoint {self._peer.key} died: {error}") from None


class LocalPeer(Peer):
    """An in-process endpoint object; calls run on a shared thread pool, like actor calls would.

    A simulated death (``Fault.die`` on an in-process endpoint) marks the peer dead: every later
    call fails with PEER_DIED, as calls to a dead actor do. Its info is not cached: it changes
    when the process joins a Ray cluster after the endpoint was made.
    """

    stable_info = False

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self.key = f"local:{endpoint._transfer_state().endpoint_id}"
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> Any:
        return self._endpoint

    def call(self, method: str, *args: Any, **kwargs: Any) -> PendingCall:
        bound = getattr(self._endpoint, method)

        def run() -> Any:
            if getattr(self._endpoint, "_transfer_dead", False):
                raise SimulatedPeerDeath("endpoint was killed by an injected fault")
            try:
                return bound(*args, **kwargs)
            except SimulatedPeerDeath:
                self._endpoint._transfer_dead = True
                raise

        return _LocalCall(_LOCAL_POOL.submit(run), self)


def as_peer(endpoint: Any) -> Peer:
    """Wrap a Ray ActorHandle or an in-process TransferEndpoint as a Peer (a Peer passes through)."""
    if isinstance(endpoint, Peer):
        return endpoint
    if isinstance(endpoint, TransferEndpoint):
        return LocalPeer(endpoint)
    if type(endpoint).__name__ == "ActorHandle" and hasattr(endpoint, "_actor_id"):
        return RayPeer(endpoint)
    raise TypeError(f"cannot transfer with {type(endpoint).__name__}: pass the ActorHandle of an actor that mixes "
                    "in transfer.TransferEndpoint, or an in-process TransferEndpoint object")
