"""A restarted model actor starts below live traffic (issue 27: recovery runs below live work).

A new actor process spends seconds of CPU before it serves (a Ray worker starting - Python and
``import ray`` -, importing torch, transformers and kvpress: about 3.3 s of CPU here, loading the
model: 0.4 s) - as much as several prefills, taken from the replicas that serve meanwhile on the
same cores. A restarted actor of an application with other replicas (with one, requests wait for
it: it should not wait for anything) is created with the runtime_env ``start_below_live_work()``
returns: its worker process is launched under ``SCHED_IDLE`` (``py_executable`` = ``chrt --idle 0
python``, where ``chrt`` is installed and the job sets no ``py_executable`` of its own), and in any
case ``deployments.serving``'s import - before the actor's module and its heavy imports - calls
``lower_if_asked`` (an environment variable asks), which puts the importing thread under
``SCHED_IDLE`` if it is not already. Linux gives such a process the CPU that live work leaves - at
full speed on an idle machine. The actor calls ``restore`` at the end of its ``__init__``: every
thread of the process returns to ``SCHED_OTHER``. (Ray's own ``worker_process_setup_hook`` is
honoured for a whole job only, not per actor.)

Only where the return is allowed (CAP_SYS_NICE, or a large enough RLIMIT_NICE; the replica tries
the round trip on a throwaway thread of its own process - same node, same user - and asks for
nothing if it fails): an actor never keeps the idle policy. Elsewhere (not Linux) nothing changes.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import threading

log = logging.getLogger(__name__)
_ASK = "KVFLEET_START_BELOW_LIVE_WORK"  # in a restarted actor's environment: ``lower_if_asked`` lowers
_MARK = "KVFLEET_STARTED_BELOW_LIVE_WORK"  # set in a process that ``lower`` moved (``restore`` undoes it)


def start_below_live_work() -> dict | None:
    """The runtime_env a restarted actor is created with (deployments/serving/replica.py), or None
    where a process could not return from SCHED_IDLE."""
    if not _can_return():
        return None
    import ray  # here, not at the top: this module is imported first in every actor process

    runtime_env: dict = {"env_vars": {_ASK: "1"}}
    chrt = shutil.which("chrt")
    job_env = ray.get_runtime_context().runtime_env if ray.is_initialized() else {}  # never starts Ray
    if chrt and not (job_env or {}).get("py_executable"):
        runtime_env["py_executable"] = f"{shlex.quote(chrt)} --idle 0 {shlex.quote(sys.executable)}"
    return runtime_env


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
    every thread it starts later under SCHED_IDLE (already so when launched by ``chrt --idle``), if
    it may return; a no-op otherwise. (Without ``chrt``, Ray's threads started before keep their
    policy: they only move messages.)"""
    if not _can_return():
        if os.sched_getscheduler(0) == os.SCHED_IDLE:
            log.warning("started under SCHED_IDLE but may not return to SCHED_OTHER: serving below live work")
        return
    policy = os.sched_getscheduler(0)
    if policy == os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif policy != os.SCHED_IDLE:
        return  # a real-time or batch policy someone chose: left alone
    os.environ[_MARK] = "1"


def lower_if_asked() -> None:
    """``lower`` in a process started with ``start_below_live_work()``'s environment (once); a no-op
    elsewhere."""
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
            except OSError as exc:  # never fails the actor's start: reported below if it stays lowered
                log.warning("thread %d: could not return to SCHED_OTHER (%s)", tid, exc)
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
