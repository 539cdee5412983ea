"""Linux's SCHED_IDLE for one thread: work that runs only on CPU time nothing else wants.

A thread under ``SCHED_IDLE`` (sched(7)) gets a CPU when no normal thread of any process wants it -
at full speed on an idle machine, about 0.3% of a core against one busy normal thread. kvfleet puts
work no client waits for there: a restarted actor's start (deployments/serving/start_priority.py)
and a background re-prefill (deployments/engine/preemption.py). Such a thread must be able to come
back to ``SCHED_OTHER`` (CAP_SYS_NICE, or a large enough RLIMIT_NICE), or it would stay below live
work for good: ``can_idle_and_return`` tries the round trip once per process, and every function
here is a no-op where it fails (or off Linux). Standard library only: imported first in actor
processes, before torch.
"""

from __future__ import annotations

import functools
import os
import threading


@functools.cache
def can_idle_and_return() -> bool:
    """Whether a thread of this process may go to SCHED_IDLE and back (tried once, on a throwaway thread)."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            result.append(True)
        except OSError:
            result.append(False)
    thread = threading.Thread(target=attempt, name="kv-priority-probe")
    thread.start()
    thread.join()
    return result == [True]


def set_idle(native_id: int, idle: bool) -> bool:
    """Put thread ``native_id`` (``threading.get_native_id()``; 0: the caller) under SCHED_IDLE or
    back under SCHED_OTHER. False (nothing changed) where the round trip is not allowed, the thread
    has ended, or its policy is neither of the two (a real-time or batch policy someone chose)."""
    if not can_idle_and_return():
        return False
    try:
        if os.sched_getscheduler(native_id) not in (os.SCHED_IDLE, os.SCHED_OTHER):
            return False
        os.sched_setscheduler(native_id, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
        return True
    except (ProcessLookupError, PermissionError):
        return False
