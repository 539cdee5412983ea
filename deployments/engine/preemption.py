"""Live prefills before background ones: a background prefill gives way at the next decoder layer.

A process runs one forward at a time (the engine's lock, which ``run`` takes: kvpress keeps per-head
masks and hooks on the shared model). A background prefill - the control plane re-prefilling a lost session nobody is
asking for yet (deployments/control/recovery_runner.py) - would otherwise hold that lock for its
whole forward while a client's load waits behind it. Here a live prefill announces itself before it
waits for the lock (``live``); a background prefill checks for one before every decoder layer
(``run``) and, when one waits, abandons its forward (``Preempted``): its partial cache is
dropped and the prefill starts again from the first token once no live prefill waits - vLLM's
RECOMPUTE preemption mode, at layer granularity (a live prefill waits at most one layer).

A background prefill gives way at most ``max_preemptions`` times, then runs to its end like live
work: a steady stream of loads cannot starve a recovery that a request may come to wait for.

Its forward also runs below live work on the CPU: its thread is under SCHED_IDLE for the forward
(thread_policy.py; with ``torch_threads: 1`` the forward's compute runs on that thread), so the
process's and the machine's live work - other replicas' decodes, this replica's store of a live
load, the ingress - gets the cores first. A live prefill that arrives raises the background thread
back to SCHED_OTHER while it finishes its layer (priority inheritance: it holds the lock the live
prefill waits for). Only where a thread may return from SCHED_IDLE (thread_policy.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from deployments.engine.thread_policy import can_idle_and_return, set_idle

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PREEMPTIONS = 4  # a recovery waits behind at most this many live prefills, then runs as live work


class Preempted(Exception):
    """A background prefill stopped at a decoder layer because a live prefill waits (it is redone)."""


class PrefillPriority:
    """Orders the forwards of one process's prefills: live first, background when none waits.

    ``layers``: the model's decoder layers (a forward pre-hook on each is the preemption point);
    ``lock``: the engine's lock, held by every forward on the model; ``lower_background``: run
    background forwards under SCHED_IDLE (default: where a thread may return from it).
    ``preemptions`` counts the background forwards abandoned so far (for metrics)."""

    def __init__(self, layers: Sequence[torch.nn.Module], lock: threading.RLock,
                 max_preemptions: int = MAX_PREEMPTIONS, lower_background: bool | None = None):
        self.layers = list(layers)
        self.lock = lock
        self.max_preemptions = max_preemptions
        self.lower_background = can_idle_and_return() if lower_background is None else lower_background
        self.preemptions = 0
        self._live = 0
        self._lowered: int | None = None  # native id of the background thread while it is under SCHED_IDLE
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Hold around a live prefill, from before it waits for the engine's lock to its end."""
        with self._changed:
            self._live += 1
            if self._lowered is not None:  # it holds the lock this prefill waits for: full speed to its next layer
                set_idle(self._lowered, False)
        try:
            yield
        finally:
            with self._changed:
                self._live -= 1
                self._changed.notify_all()

    def run(self, forward: Callable[[], T], background: bool) -> T:
        """``forward()`` under the engine's lock: as live work, or as background work that is
        abandoned (``forward`` must leave the shared model as it found it when it raises) and redone
        while live prefills wait. Exceptions of ``forward`` other than a preemption propagate."""
        if not background:
            with self.live(), self.lock:
                return forward()
        for attempt in range(1, self.max_preemptions + 1):
            with self._changed:
                self._changed.wait_for(lambda: self._live == 0)
            stop = _StopForLive(self)
            try:
                with self.lock, self._below_live_work(), stop.installed():
                    return forward()
            except BaseException:
                if not stop.fired:
                    raise
            self.preemptions += 1
            log.info("a background prefill gave way to a live one before layer %d (%d of at most %d times)",
                     stop.at_layer, attempt, self.max_preemptions)
        with self.live(), self.lock:
            return forward()

    def live_waiting(self) -> bool:
        return self._live > 0

    @contextlib.contextmanager
    def _below_live_work(self) -> Iterator[None]:
        """The calling (background) thread under SCHED_IDLE for the block, unless a live prefill
        already waits; back under SCHED_OTHER after it, however it ends."""
        tid = threading.get_native_id()
        with self._changed:
            if self.lower_background and self._live == 0 and set_idle(tid, True):
                self._lowered = tid
        try:
            yield
        finally:
            with self._changed:
                if self._lowered == tid:
                    self._lowered = None
                    set_idle(tid, False)


class _StopForLive:
    """The pre-hooks of one background try: raise Preempted, in this thread only, once a live prefill waits."""

    def __init__(self, priority: PrefillPriority):
        self.priority = priority
        self.thread = threading.get_ident()
        self.fired = False
        self.at_layer = -1

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        handles = [layer.register_forward_pre_hook(self._hook(i)) for i, layer in enumerate(self.priority.layers)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, index: int) -> Callable[..., None]:
        def check(_module: torch.nn.Module, _args: tuple) -> None:
            if threading.get_ident() == self.thread and self.priority.live_waiting():
                self.fired, self.at_layer = True, index
                raise Preempted(f"a live prefill waits (stopped before layer {index})")
        return check
