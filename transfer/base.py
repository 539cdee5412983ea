"""The transfer interface: a backend orchestrates, a Sender and a Receiver move the bytes.

Roles (the vLLM KV-connector split):

- ``TransferBackend`` lives with the caller (the control plane);
  ``protocol.start_transfer(backend, source, target, key)`` returns a ``TransferTicket`` at once
  and drives the protocol on a thread.
- ``Sender`` lives in the source endpoint process; ``Receiver`` in the target's. Endpoints
  (endpoint.TransferEndpoint) build them lazily from the backend's registered name and config.

Protocol, per transfer (every step bounded by the ticket's deadline)::

    source.describe(key)          -> manifest                 (kvpool.pack() manifest, checksum)
    target.prepare(manifest)      -> descriptor               (expectation check, room reserved)
    source.send(descriptor)       -> report                   (the backend moves the bytes)
    target.finish(report)         -> nbytes                   (arrival, kvpool.verify: checksum)
    target.commit()                                            (import hook; the point of no return)
    source.release()                                           (staging freed)

This module is a leaf of interfaces and data: it imports no other part of transfer/ that could
import it back (tests/unit/transfer/test_transfer_layering.py keeps it so).

A backend is one small file: its Config (closed pydantic model), Sender, Receiver, and a
``plan()`` that says whether and how it can connect two endpoints. Register it by name in
registry.py.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from transfer.faults import Fault
from transfer.states import TransferId

DEFAULT_TIMEOUT_S = 60.0


class BackendConfig(BaseModel):
    """Settings every backend shares; each backend extends it with its own closed model.

    ``arrival_grace_s``: how long a target waits for bytes after the source reported them sent,
    before failing with DATA_LOST. ``cleanup_timeout_s``: bound on each cleanup call.
    ``settle_s``: a failed or aborted ticket turns terminal once both endpoints have cleaned up
    (so an immediate retry finds them clean), or after this long, whichever comes first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    arrival_grace_s: float = Field(default=1.0, gt=0)
    cleanup_timeout_s: float = Field(default=10.0, gt=0)
    settle_s: float = Field(default=2.0, ge=0)


@dataclass(frozen=True)
class Route:
    """What ``plan`` decided: the concrete backend and the config both endpoints build roles from.

    ``exclusive``: transfers with the same key run one at a time (from prepare to finish) in the
    orchestrating process, for transports that cannot tell concurrent transfers apart (NCCL).
    """

    backend: str
    config: dict[str, Any]
    exclusive: str | None = None


@dataclass
class SendJob:
    """One send, as a Sender sees it.

    ``payload``: 1-D uint8 on the source's device. ``descriptor``: the target's prepare() result.
    ``drop``: fault injection, run the send but move no bytes. ``progress(bytes_sent)``: call after
    each chunk; it raises TransferAborted once the transfer is aborted (and applies die faults).
    ``deadline``: ``time.monotonic()`` value in this process.
    """

    transfer_id: TransferId
    payload: torch.Tensor
    descriptor: dict[str, Any]
    source: dict[str, Any]
    target: dict[str, Any]
    deadline: float
    drop: bool
    progress: Callable[[int], None]
    cancelled: threading.Event

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class ReceiveJob:
    """One receive, as a Receiver sees it: ``nbytes`` will land on ``device`` before ``deadline``."""

    transfer_id: TransferId
    nbytes: int
    device: torch.device
    source: dict[str, Any]
    target: dict[str, Any]
    deadline: float
    cancelled: threading.Event = field(default_factory=threading.Event)

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class LentBuffer:
    """Received bytes (1-D uint8) in memory the receiver owns; ``release()`` hands it back (once)."""

    buffer: torch.Tensor
    release: Callable[[], None]


class Sender(ABC):
    """Source side of one backend, one instance per endpoint process and config."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @abstractmethod
    def send(self, job: SendJob) -> dict[str, Any]:
        """Move ``job.payload`` to the target; return a small picklable report for its finish()."""

    def release(self, transfer_id: TransferId) -> None:
        """Free anything still held for this transfer (staging memory, exported handles)."""

    def stats(self) -> dict[str, Any]:
        """Counters worth exposing (e.g. registered-memory pool reuse); JSON-able."""
        return {}


class Receiver(ABC):
    """Target side of one backend, one instance per endpoint process and config."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config

    @abstractmethod
    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        """Reserve room for ``job.nbytes``; return the picklable descriptor the Sender needs.

        Raise kvpool.CapacityError when there is no room.
        """

    @abstractmethod
    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        """Collect the bytes the Sender reported sent.

        Bytes the sender *delivered* (one-sided writes, sends) must be there by
        ``arrival_deadline`` (monotonic; the grace period), else raise TransferError(DATA_LOST).
        Backends that *pull* the bytes here (object store) wait until ``job.deadline`` and raise
        TransferError(TIMEOUT) past it. The returned LentBuffer holds exactly ``job.nbytes`` bytes.
        """

    @abstractmethod
    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        """Drop this transfer (idempotent). ``source_quiesced`` False means the source may still
        write into memory it was given: such memory must not be reused for another transfer."""

    def stats(self) -> dict[str, Any]:
        """Counters worth exposing (e.g. registered-memory pool reuse); JSON-able."""
        return {}


class TransferBackend(ABC):
    """Orchestrator side of a backend: ``start`` a transfer, get a ticket."""

    name: ClassVar[str]
    Config: ClassVar[type[BackendConfig]] = BackendConfig
    sender_cls: ClassVar[type[Sender]]
    receiver_cls: ClassVar[type[Receiver]]

    def __init__(self, config: BackendConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(config, BackendConfig):
            config = config.model_dump()
        self.config = self.Config(**{**(config or {}), **overrides})

    @classmethod
    def availability(cls) -> str | None:
        """None if this backend can run in the current process, else a sentence saying why not."""
        return None

    @abstractmethod
    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        """Decide how to move data between two endpoints (their ``transfer_info()`` dicts).

        Raise TransferUnavailableError if this backend cannot connect them.
        """

    def next_fault(self) -> Fault | None:
        """A fault to inject when start_transfer() got none (the fake backend scripts these)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"
