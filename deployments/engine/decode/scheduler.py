"""Iteration-level scheduler (Orca / vLLM): decides who runs each decode step; imports no torch.

``add`` queues a request (FIFO), ``abort`` cancels one (waiting or running), ``schedule`` returns
the next ``Step`` (who leaves, who decodes, who joins within ``BatchConfig``), ``update`` applies a
step's per-row outputs and returns the rows' verdicts (EOS, stop string, max_tokens, error).
Running rows always keep their place; admission is FIFO, and a queue head that does not fit
blocks the ones behind it (no reordering, so no starvation of long requests).
"""

from __future__ import annotations

from collections import deque

from deployments.engine.decode import budget
from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.request import DecodeRequest, RowState
from deployments.engine.decode.step import RowEvent, RowOutput, Step


class Scheduler:
    def __init__(self, config: BatchConfig):
        self.config = config
        self.waiting: deque[DecodeRequest] = deque()
        self.running: dict[str, DecodeRequest] = {}  # insertion order = batch row order
        self._leaving: list[str] = []

    # ---- inputs --------------------------------------------------------------------------------
    def add(self, request: DecodeRequest) -> None:
        if request.request_id in self.running or any(r.request_id == request.request_id for r in self.waiting):
            raise ValueError(f"request {request.request_id!r} is already scheduled")
        request.state = RowState.WAITING
        self.waiting.append(request)

    def abort(self, request_id: str) -> RowEvent | None:
        """Cancel a request; returns its verdict, or None if it is unknown or already finished."""
        for request in self.waiting:
            if request.request_id == request_id:
                self.waiting.remove(request)
                self._finish(request, "cancelled")
                return RowEvent(request_id, "cancelled")
        request = self.running.get(request_id)
        if request is None or request.state is RowState.FINISHED:
            return None
        self._finish(request, "cancelled")
        return RowEvent(request_id, "cancelled")

    # ---- decisions -----------------------------------------------------------------------------
    def schedule(self) -> Step:
        leaves = tuple(self._leaving)
        self._leaving.clear()
        for request_id in leaves:
            self.running.pop(request_id, None)
        decode = [r for r in self.running.values() if r.state is RowState.RUNNING]
        joins: list[DecodeRequest] = []
        while self.waiting and budget.fits(self.config, decode, joins, self.waiting[0]):
            joins.append(self.waiting.popleft())
        for request in joins:
            request.state = RowState.RUNNING
            self.running[request.request_id] = request
        return Step(leaves, tuple(r.request_id for r in decode), tuple(r.request_id for r in joins))

    def update(self, step: Step, outputs: dict[str, RowOutput]) -> list[RowEvent]:
        """Apply one step's outputs; every row of ``step.rows`` gets a verdict (finished or not).

        A row missing from ``outputs`` (e.g. aborted during the step) is skipped."""
        events = []
        for request_id in step.rows:
            request = self.running.get(request_id)
            out = outputs.get(request_id)
            if request is None or out is None or request.state is RowState.FINISHED:
                continue
            reason = self._verdict(request, out)
            if reason is not None:
                self._finish(request, reason)
            events.append(RowEvent(request_id, reason))
        return events

    def _verdict(self, request: DecodeRequest, out: RowOutput) -> str | None:
        if out.error is not None:
            return "error"
        request.produced += 1
        if (out.is_eos and not request.ignore_eos) or out.hit_stop:
            return "stop"
        if request.produced >= request.max_tokens:
            return "length"
        return None

    def _finish(self, request: DecodeRequest, reason: str) -> None:
        request.state = RowState.FINISHED
        request.finish_reason = reason
        if request.request_id in self.running:
            self._leaving.append(request.request_id)

    # ---- observation ---------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running and not self._leaving

    def snapshot(self) -> dict:
        """Read from other threads: copies the running rows first (the loop thread changes them)."""
        rows = [r for r in list(self.running.values()) if r.state is RowState.RUNNING]
        return {"running": len(rows), "waiting": len(self.waiting),
                "rows": [{"request_id": r.request_id, "produced": r.produced, "max_tokens": r.max_tokens,
                          "columns": r.columns} for r in rows],
                "kv_tokens": budget.kv_tokens(rows)}
