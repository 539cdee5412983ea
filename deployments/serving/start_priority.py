"""A restarted model actor starts below live traffic (issue 27: recovery runs below live work).

A new actor process spends seconds of CPU before it serves (a Ray worker, importing torch,
transformers and kvpress: about 3.3 s of CPU here, loading the model: 0.4 s) - as much as several
prefills, taken from the replicas that serve meanwhile on the same cores. A restarted actor of an
application with other replicas (with one, requests wait for it: it should not wait for anything)
is created with ``START_BELOW_LIVE_WORK`` (an environment variable in its runtime_env); the package
``deployments.serving`` calls ``lower_if_asked`` when it is imported - before the actor's module
and its heavy imports - and the process runs under ``SCHED_IDLE`` (Linux: it gets the CPU that
live work leaves; at full speed on an idle machine). The actor calls ``restore`` at the end of its
``__init__``: every thread of the process returns to the policy it started with. (Ray's own
``worker_process_setup_hook`` is honoured for a whole job only, not per actor.)

Only where the return is allowed (CAP_SYS_NICE, or a large enough RLIMIT_NICE): ``lower`` first
tries the round trip on a throwaway thread and does nothing if it fails - an actor never keeps
the idle policy. Elsewhere (not Linux) both do nothing.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)
_ASK = "KVFLEET_START_BELOW_LIVE_WORK"  # in a restarted actor's environment: ``lower_if_asked`` lowers
_MARK = "KVFLEET_STARTED_BELOW_LIVE_WORK"  # set in a process that ``lower`` moved (``restore`` undoes it)
START_BELOW_LIVE_WORK = {"env_vars": {_ASK: "1"}}
"""The runtime_env a restarted actor is created with (deployments/serving/replica.py)."""


def _can_return() -> bool:
    """Whether a thread of this process may go to SCHED_IDLE and back (tried on a throwaway thread)."""
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


def lower() -> None:
    """Run the calling thread - the worker's main thread, which imports and starts the actor - and
    every thread it starts later under SCHED_IDLE, if it may return; a no-op otherwise. (Ray's
    threads started before keep their policy: they only move messages.)"""
    if not _can_return() or os.sched_getscheduler(0) != os.SCHED_OTHER:
        return
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    os.environ[_MARK] = "1"


def lower_if_asked() -> None:
    """``lower`` in a process started with ``START_BELOW_LIVE_WORK`` (once); a no-op elsewhere."""
    if os.environ.pop(_ASK, None) == "1":
        lower()


def restore() -> None:
    """Every thread of this process back to SCHED_OTHER, if ``lower`` moved it (else a no-op). A
    thread that a still-lowered thread starts during a pass is caught by the next pass."""
    if os.environ.pop(_MARK, None) is None:
        return
    for _ in range(10):
        lowered = [tid for tid in _threads() if _policy(tid) == os.SCHED_IDLE]
        if not lowered:
            break
        for tid in lowered:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except ProcessLookupError:  # the thread ended meanwhile
                pass
    left = [tid for tid in _threads() if _policy(tid) == os.SCHED_IDLE]
    if left:
        log.warning("threads %s are still under SCHED_IDLE after the start", left)
    log.info("started below live work (SCHED_IDLE); serving at normal priority now")


def _threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _policy(tid: int) -> int | None:
    try:
        return os.sched_getscheduler(tid)
    except ProcessLookupError:
        return None
