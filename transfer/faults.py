"""Fault injection: make a real transfer fail the way real ones do, to test callers and backends.

A ``Fault`` is passed to ``TransferBackend.start(..., fault=...)``; the endpoints apply it around
the backend's real data path, so each backend's own detection is what turns it into a failed
ticket. Faults never touch the source's stored cache (corruption works on a copy).

===========  ======================================================  =================
kind         what happens                                            ticket ends with
===========  ======================================================  =================
drop         the source runs its send but moves no bytes             DATA_LOST
corrupt      one byte of a copy of the payload is flipped            CHECKSUM_MISMATCH
delay        the source sleeps ``delay_s`` before sending            TIMEOUT (if past the timeout)
die          the ``side`` process exits after ``at_fraction`` sent   PEER_DIED
===========  ======================================================  =================

Inside a Ray actor ``die`` really exits the process (``os._exit``); an in-process endpoint
(no Ray) is marked dead instead and refuses every later call, which is what a caller sees.
"""

from __future__ import annotations

import threading
import time
from enum import Enum

import torch
from pydantic import BaseModel, ConfigDict, Field

from transfer.errors import TransferAborted


class FaultKind(str, Enum):
    DROP = "drop"
    CORRUPT = "corrupt"
    DELAY = "delay"
    DIE = "die"


class FaultSide(str, Enum):
    SOURCE = "source"
    TARGET = "target"


class Fault(BaseModel):
    """One injected fault. ``at_fraction``: where in the payload a corruption or death happens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    side: FaultSide = FaultSide.SOURCE
    delay_s: float = Field(default=0.0, ge=0.0)
    at_fraction: float = Field(default=0.5, ge=0.0, le=1.0)

    @classmethod
    def drop(cls) -> "Fault":
        return cls(kind=FaultKind.DROP)

    @classmethod
    def corrupt(cls, at_fraction: float = 0.5) -> "Fault":
        return cls(kind=FaultKind.CORRUPT, at_fraction=at_fraction)

    @classmethod
    def delay(cls, delay_s: float) -> "Fault":
        return cls(kind=FaultKind.DELAY, delay_s=delay_s)

    @classmethod
    def die(cls, side: FaultSide | str = FaultSide.SOURCE, at_fraction: float = 0.5) -> "Fault":
        return cls(kind=FaultKind.DIE, side=FaultSide(side), at_fraction=at_fraction)

    def hits(self, kind: FaultKind, side: FaultSide = FaultSide.SOURCE) -> bool:
        return self.kind == kind and self.side == side


def corrupted_copy(payload: torch.Tensor, at_fraction: float) -> torch.Tensor:
    """A copy of ``payload`` with one byte inverted (the original is never modified)."""
    copy = payload.clone()
    if copy.numel():
        index = min(int(copy.numel() * at_fraction), copy.numel() - 1)
        copy[index] = 255 - copy[index]
    return copy


def sleep_unless_cancelled(delay_s: float, cancelled: threading.Event, transfer_id: str) -> None:
    """Sleep ``delay_s`` in short slices; raise TransferAborted as soon as ``cancelled`` is set."""
    deadline = time.monotonic() + delay_s
    while (left := deadline - time.monotonic()) > 0:
        if cancelled.wait(min(left, 0.05)):
            raise TransferAborted(transfer_id)
