"""fake: an in-memory backend for tests of callers (the control plane), with scripted faults.

The bytes travel inside the send report (a copy, as a wire would make), so it works between
in-process endpoints without Ray and between Ray actors alike. ``faults`` scripts what happens
to successive transfers started by one backend object, e.g. ``[Fault.corrupt(), None]``: the
first transfer fails with CHECKSUM_MISMATCH, the retry succeeds. ``latency_s`` delays each send.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch
from pydantic import Field

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.errors import TransferError
from transfer.faults import Fault
from transfer.states import FailureReason, TransferId


class FakeConfig(BackendConfig):
    latency_s: float = Field(default=0.0, ge=0.0)
    faults: tuple[Fault | None, ...] = ()


class FakeSender(Sender):
    def send(self, job: SendJob) -> dict[str, Any]:
        end = time.monotonic() + self.config.latency_s
        while (left := end - time.monotonic()) > 0:
            job.progress(0)
            job.cancelled.wait(min(left, 0.05))
        wire = torch.empty(0, dtype=torch.uint8) if job.drop else job.payload.detach().to("cpu", copy=True)
        job.progress(job.payload.numel())
        return {"wire": wire}


class FakeReceiver(Receiver):
    def prepare(self, job: ReceiveJob) -> dict[str, Any]:
        return {}

    def finish(self, job: ReceiveJob, report: dict[str, Any], arrival_deadline: float) -> LentBuffer:
        wire: torch.Tensor = report["wire"]
        if wire.numel() != job.nbytes:
            raise TransferError(FailureReason.DATA_LOST, f"{wire.numel()} of {job.nbytes} bytes arrived")
        return LentBuffer(wire.to(job.device), lambda: None)

    def abort(self, transfer_id: TransferId, source_quiesced: bool) -> None:
        pass


class FakeBackend(TransferBackend):
    name = "fake"
    Config = FakeConfig
    sender_cls = FakeSender
    receiver_cls = FakeReceiver

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._script = list(self.config.faults)
        self._script_lock = threading.Lock()

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        return Route(self.name, self.config.model_dump(mode="json", exclude={"faults"}))

    def next_fault(self) -> Fault | None:
        with self._script_lock:
            return self._script.pop(0) if self._script else None
