"""Pressure on one replica's KV budget triggers migrations to the other node; answers are unchanged
and no session is lost. Admin moves pile every session onto one replica first."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import document
from tests.integration.test_fleet_control import ask, replica_of, wait_event
from tests.serving import create_session, serve_app, small_args, two_node_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PORT = 8030


def test_pressure_moves_sessions_to_the_other_node():
    args = small_args(replicas={"count": 2, "node_resources": [{"node_a": 1}, {"node_b": 1}],
                                "pool": {"host_budget_bytes": "24MiB"}},
                      control={"pressure_threshold": 0.5, "pressure_target": 0.3},
                      default_press={"name": "knorm", "compression_ratio": 0.5})
    with two_node_cluster(), serve_app(PORT, args) as base:
        sessions = [create_session(base, document(10 + i)) for i in range(3)]  # ~5 MB each
        answers = {s["id"]: ask(base, s["id"]) for s in sessions}
        for session_id in answers:  # 3 x ~5 MB on one replica: 0.65 of its 24 MiB > threshold 0.5
            if replica_of(base, session_id) != "replica-1":
                event = httpx.post(f"{base}/admin/move", timeout=30,
                                   json={"session_id": session_id, "target_replica": "replica-1"}).json()
                assert wait_event(base, event["event_id"])["status"] == "done"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            counters = httpx.get(f"{base}/admin/health", timeout=30).json()["counters"]
            started = sum(v for k, v in counters.items() if k.startswith("migrations_started_"))
            if counters.get("migrations_started_pressure", 0) >= 1 and counters.get("migrations_done", 0) >= started:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no pressure migration happened: {counters}")
        assert {replica_of(base, s) for s in answers} == {"replica-0", "replica-1"}
        for session_id, answer in answers.items():
            assert ask(base, session_id) == answer
        health = httpx.get(f"{base}/admin/health", timeout=30).json()
        assert health["sessions"].get("ready", 0) == len(answers)
