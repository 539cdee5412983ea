"""deployments/serving/start_priority.py: a process started with START_BELOW_LIVE_WORK (a restarted
actor's) runs under SCHED_IDLE from the moment it imports deployments.serving (below live work),
and every one of its threads returns to SCHED_OTHER once it serves - or, where the return is not
allowed, nothing changes. Run in fresh processes (the policy is per thread)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from deployments.serving.start_priority import start_below_live_work

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies only")

SCRIPT = """
import json, os, threading
at_start = os.sched_getscheduler(0)  # before any kvfleet code: launched by chrt --idle, or not
from deployments.serving import start_priority  # the package lowers the process when asked to

moved = os.sched_getscheduler(0) == os.SCHED_IDLE
seen = []
worker = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))  # started while lowered
worker.start(); worker.join()
parked, go = threading.Event(), threading.Event()
def wait():
    parked.set(); go.wait(10)
waiting = threading.Thread(target=wait)  # a thread alive across restore()
waiting.start(); parked.wait(10)
start_priority.restore()
after = sorted({os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")})
go.set(); waiting.join()
print(json.dumps({"at_start": at_start, "moved": moved, "child_policy": seen[0], "after": after, "can": start_priority._can_return(),
                  "idle": os.SCHED_IDLE, "other": os.SCHED_OTHER}))
"""


def run(script: str, asked: bool) -> str:
    """``script`` in a fresh process, started as a restarted actor's worker is when ``asked``
    (start_below_live_work's environment and, where it names one, its ``py_executable`` command)."""
    env = {k: v for k, v in os.environ.items() if k != "KVFLEET_START_BELOW_LIVE_WORK"}
    runtime_env = start_below_live_work() if asked else None
    command = [sys.executable]
    if runtime_env is not None:
        env.update(runtime_env["env_vars"])
        command = shlex.split(runtime_env.get("py_executable", sys.executable))
    return subprocess.run([*command, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                          env=env).stdout


def test_lowered_until_restored_and_never_left_idle():
    facts = json.loads(run(SCRIPT, asked=True).strip().splitlines()[-1])
    assert facts["after"] == [facts["other"]]  # every thread serves at normal priority afterwards
    if facts["can"]:
        assert facts["moved"] and facts["child_policy"] == facts["idle"]  # threads it starts inherit it
        assert facts["at_start"] == (facts["idle"] if "py_executable" in start_below_live_work() else facts["other"])
    else:  # no CAP_SYS_NICE: lower() is a no-op rather than a one-way trip
        assert not facts["moved"] and facts["child_policy"] == facts["other"]


def test_a_process_not_asked_is_never_lowered():
    facts = json.loads(run(SCRIPT, asked=False).strip().splitlines()[-1])
    assert not facts["moved"] and facts["child_policy"] == facts["other"] and facts["after"] == [facts["other"]]
