"""deployments/serving/start_priority.py: a process started with START_BELOW_LIVE_WORK (a restarted
actor's) runs under SCHED_IDLE from the moment it imports deployments.serving (below live work),
and every one of its threads returns to SCHED_OTHER once it serves - or, where the return is not
allowed, nothing changes. Run in fresh processes (the policy is per thread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deployments.serving.start_priority import START_BELOW_LIVE_WORK

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies only")

SCRIPT = """
import json, os, threading
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
print(json.dumps({"moved": moved, "child_policy": seen[0], "after": after, "can": start_priority._can_return(),
                  "idle": os.SCHED_IDLE, "other": os.SCHED_OTHER}))
"""


def run(script: str, asked: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KVFLEET_START_BELOW_LIVE_WORK"}
    env.update(START_BELOW_LIVE_WORK["env_vars"] if asked else {})
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                          env=env).stdout


def test_lowered_until_restored_and_never_left_idle():
    facts = json.loads(run(SCRIPT, asked=True).strip().splitlines()[-1])
    assert facts["after"] == [facts["other"]]  # every thread serves at normal priority afterwards
    if facts["can"]:
        assert facts["moved"] and facts["child_policy"] == facts["idle"]  # threads it starts inherit it
    else:  # no CAP_SYS_NICE: lower() is a no-op rather than a one-way trip
        assert not facts["moved"] and facts["child_policy"] == facts["other"]


def test_a_process_not_asked_is_never_lowered():
    facts = json.loads(run(SCRIPT, asked=False).strip().splitlines()[-1])
    assert not facts["moved"] and facts["child_policy"] == facts["other"] and facts["after"] == [facts["other"]]
