"""Live prefills before background ones: a background prefill gives way at the next decoder layer.

A process runs one forward at a time (the engine's lock, which ``run`` takes: kvpress keeps per-head
masks and hooks on the shared model). A background prefill - the control plane re-prefilling a lost
session nobody is asking for yet (deployments/control/recovery_runner.py) - would otherwise hold that
lock for its whole forward while a client's load waits behind it. Here a live prefill announces itself before it
waits for the lock (``live``); a background prefill checks for one before every decoder layer
(``run``) and, when one waits, abandons its forward (``Preempted``): its partial cache is
dropped and the prefill starts again from the first token once no live prefill waits - vLLM's
RECOMPUTE preemption mode, at layer granularity (a live prefill waits at most one layer).

A background prefill gives way at most ``max_preemptions`` times, then runs to its end like live
work: a steady stream of loads cannot starve a recovery that a request may come to wait for.

The background thread keeps the normal scheduling policy. Putting it under SCHED_IDLE for its
forward (as a restarted actor's start is, deployments/serving/start_priority.py) was tried and
measured: it shares the GIL with the live prefills of its process, and a SCHED_IDLE thread that the
kernel preempts while holding the GIL stalls them - with both cores saturated by other processes, a
live prefill arriving during a background one took 0.31-0.44 s (idle policy) against 0.30-0.39 s
(normal policy) and 0.33-0.38 s alone, 8 tries each (an ad-hoc script, on commit 729751e); no gain
showed in benchmarks/restart_recovery.py.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Iterator, Sequence, TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PREEMPTIONS = 4  # a recovery waits behind at most this many live prefills, then runs as live work


class Preempted(Exception):
    """A background prefill stopped at a decoder layer because a live prefill waits (it is redone)."""


class PrefillPriority:
    """Orders the forwards of one process's prefills: live first, background when none waits.

    ``layers``: the model's decoder layers (a forward pre-hook on each is the preemption point);
    ``lock``: the engine's lock, held by every forward on the model. ``preemptions`` counts the
    background forwards abandoned so far (for metrics)."""

    def __init__(self, layers: Sequence[torch.nn.Module], lock: threading.RLock,
                 max_preemptions: int = MAX_PREEMPTIONS):
        self.layers = list(layers)
        self.lock = lock
        self.max_preemptions = max_preemptions
        self.preemptions = 0
        self._live = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Hold around a live prefill, from before it waits for the engine's lock to its end."""
        with self._changed:
            self._live += 1
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
                with self.lock, stop.installed():
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
