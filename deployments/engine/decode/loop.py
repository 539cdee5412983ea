"""DecodeLoop: the one thread that runs a replica's batched decode.

Callers (the DecodeActor's event loop) ``submit`` a generation with a ``deliver`` callback and may
``abort`` it; both only post to an inbox. The loop thread drains the inbox (blocking when idle),
then ``schedule -> run -> update`` (scheduler, runner) and hands every row its events:
``GenerationStep`` objects exactly like ``KVEngine.generate`` yields (a token step, then a final
step with ``finish_reason``), or an exception for a row that failed. ``deliver`` runs on the loop
thread; the actor wraps it in ``call_soon_threadsafe`` to reach its asyncio queue.

A failing row fails alone (its extend, sampling or detokenization); if the batched forward itself
raises, every row of that step gets the error and the batch is rebuilt empty (logged).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Callable

from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.request import DecodeRequest
from deployments.engine.decode.runner import BatchRunner, RowResult, RowWork
from deployments.engine.decode.scheduler import Scheduler
from deployments.engine.decode.stats import LoopStats
from deployments.engine.decode.step import RowEvent, Step
from deployments.engine.detokenizer import StreamingDetokenizer
from deployments.engine.engine import GenerationStep
from deployments.engine.sampling import SamplingParams
from kvpool.compressed_kv import CompressedKV

log = logging.getLogger(__name__)
Deliver = Callable[[GenerationStep | BaseException], None]


class DecodeLoop:
    def __init__(self, engine, config: BatchConfig = BatchConfig(), name: str = "kvfleet-decode-loop"):
        self.engine = engine
        self.config = config
        self.scheduler = Scheduler(config)
        self.runner = BatchRunner(engine)
        self.stats = LoopStats()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._work: dict[str, RowWork] = {}
        self._deliver: dict[str, Deliver] = {}
        self._ids = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- callers (any thread) ------------------------------------------------------------------
    def submit(self, ckv: CompressedKV, input_ids: list[int], params: SamplingParams, deliver: Deliver) -> str:
        """Queue a generation of ``input_ids`` after ``ckv`` (validated by the caller, codec "none",
        on the engine's device); returns its request id (for ``abort``)."""
        request_id = f"r{next(self._ids)}"
        sampler = self.engine.new_sampler(params, ckv, input_ids)
        work = RowWork(request_id, ckv, list(input_ids), sampler,
                       StreamingDetokenizer(self.engine.tokenizer, params.stop, params.min_tokens),
                       ckv.meta.next_position, params.max_tokens, frozenset(params.stop_token_ids))
        request = DecodeRequest(request_id, len(input_ids), max(l.max_head_length() for l in ckv.layers),
                                params.max_tokens, params.ignore_eos)
        self._inbox.put(("submit", request, work, deliver))
        return request_id

    def abort(self, request_id: str) -> None:
        self._inbox.put(("abort", request_id))

    def close(self, timeout_s: float = 5.0) -> None:
        self._stopped = True
        self._inbox.put(("stop",))
        self._thread.join(timeout_s)

    def snapshot(self) -> dict:
        """The running batch and counters, for replica stats and /metrics."""
        return {**self.scheduler.snapshot(), **self.stats.snapshot(), "enabled": True,
                "max_batch_size": self.config.max_batch_size, "batch_rows": len(self.runner)}

    # ---- the loop thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            self._drain(block=self.scheduler.idle)
            if self._stopped:
                break
            step = self.scheduler.schedule()
            if step.empty:
                continue
            started, extends = time.perf_counter(), self.runner.extend_forwards
            try:
                results = self.runner.run(step, self._work)
            except Exception as exc:  # noqa: BLE001 - one bad forward must not kill the replica's decode
                log.exception("batched decode step failed; failing its %d rows", len(step.rows))
                self._fail_step(step, exc)
                continue
            events = self.scheduler.update(step, {r: res.output for r, res in results.items()})
            for event in events:
                self._hand_out(event, results[event.request_id])
            if step.rows:
                self.stats.record(len(step.rows), len(step.joins),
                                  sum(1 for res in results.values() if res.output.error is None),
                                  time.perf_counter() - started, len(self.scheduler.waiting),
                                  extends=self.runner.extend_forwards - extends)

    def _drain(self, block: bool) -> None:
        try:
            message = self._inbox.get(timeout=1.0) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message: tuple) -> None:
        if message[0] == "submit":
            _, request, work, deliver = message
            self._work[request.request_id] = work
            self._deliver[request.request_id] = deliver
            self.scheduler.add(request)
        elif message[0] == "abort":
            event = self.scheduler.abort(message[1])
            work = self._work.get(message[1])
            if event is not None and work is not None:
                self._finish(work, "cancelled")

    def _hand_out(self, event: RowEvent, result: RowResult) -> None:
        work = self._work[event.request_id]
        if result.output.error is not None:
            self._send(work.request_id, work.error or RuntimeError(result.output.error))
            self._forget(work.request_id)
            return
        self._send(work.request_id, GenerationStep(result.choice, result.text, None, len(work.input_ids),
                                                   work.produced))
        if event.finish_reason is not None:
            self._finish(work, event.finish_reason)

    def _finish(self, work: RowWork, reason: str) -> None:
        self._send(work.request_id, GenerationStep(None, work.detok.flush(), reason, len(work.input_ids),
                                                   work.produced))
        self._forget(work.request_id)

    def _fail_step(self, step: Step, exc: Exception) -> None:
        self.runner.reset()
        for request_id in step.rows:
            self.scheduler.abort(request_id)
            if request_id in self._work:
                self._send(request_id, exc)
                self._forget(request_id)
        # rows already in the batch but not in this step cannot exist (every running row decodes)

    def _send(self, request_id: str, item: GenerationStep | BaseException) -> None:
        deliver = self._deliver.get(request_id)
        if deliver is None:
            return
        try:
            deliver(item)
        except Exception:  # noqa: BLE001 - a consumer that went away must not stop the loop
            log.warning("could not deliver to request %s (consumer gone)", request_id, exc_info=True)

    def _forget(self, request_id: str) -> None:
        self._work.pop(request_id, None)
        self._deliver.pop(request_id, None)
