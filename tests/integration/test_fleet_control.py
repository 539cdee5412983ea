"""The fleet on a simulated 2-node Ray cluster: admin move, drain, pressure migration, decode-actor
and prefill-actor death, control-plane death - every session keeps answering with the same greedy
answer."""

from __future__ import annotations

import time

import httpx
import pytest
import ray

from tests.conftest import document
from tests.serving import MODEL, create_session, serve_app, small_args, two_node_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PORT = 8010
QUESTION = "What is the secret code of the vault?"


def ask(base: str, session_id: str, timeout_s: float = 240) -> str:
    """Greedy answer; retries while the session is not ready (409) or its replica restarts (503)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        r = httpx.post(f"{base}/v1/chat/completions", timeout=120, json={
            "model": MODEL, "session_id": session_id, "temperature": 0, "max_tokens": 12,
            "messages": [{"role": "user", "content": QUESTION}]})
        if r.status_code == 200:
            return r.json()["choices"][0]["message"]["content"]
        last = r.text
        assert r.status_code in (409, 503), r.text
        time.sleep(1)
    raise AssertionError(f"session {session_id} did not answer within {timeout_s} s: {last}")


def wait_event(base: str, event_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = httpx.get(f"{base}/admin/events/{event_id}", timeout=30).json()
        if event["status"] in ("done", "failed"):
            return event
        time.sleep(0.5)
    raise AssertionError(f"admin event {event_id} did not finish")


def replica_of(base: str, session_id: str) -> str:
    return httpx.post(f"{base}/admin/lookup", json={"session_id": session_id}, timeout=30).json()["replica"]


def wait_until(predicate, timeout_s: float = 240, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def fleet():
    args = small_args(replicas={"count": 2, "node_resources": [{"node_a": 1}, {"node_b": 1}],
                                "pool": {"host_budget_bytes": "256MiB"}},
                      control={"placement_policy": "least_bytes", "heartbeat_timeout_s": 60},
                      default_press={"name": "knorm", "compression_ratio": 0.5})
    with two_node_cluster() as cluster:
        with serve_app(PORT, args) as base:
            sessions = [create_session(base, document(10 + i)) for i in range(4)]
            answers = {s["id"]: ask(base, s["id"]) for s in sessions}
            yield base, cluster, answers


def test_sessions_spread_over_both_nodes(fleet):
    base, _, answers = fleet
    replicas = {replica_of(base, s) for s in answers}
    assert replicas == {"replica-0", "replica-1"}
    nodes = {r["node"] for r in httpx.get(f"{base}/admin/health", timeout=30).json()["replicas"]}
    assert len(nodes) == 2


def test_admin_move_keeps_the_answer(fleet):
    base, _, answers = fleet
    session_id = next(iter(answers))
    source = replica_of(base, session_id)
    target = "replica-1" if source == "replica-0" else "replica-0"
    event = httpx.post(f"{base}/admin/move", json={"session_id": session_id, "target_replica": target},
                       timeout=30).json()
    done = wait_event(base, event["event_id"])
    assert done["status"] == "done", done
    assert replica_of(base, session_id) == target
    assert ask(base, session_id) == answers[session_id]


def test_killing_a_decode_actor_loses_no_session(fleet):
    base, _, answers = fleet
    victim = replica_of(base, next(iter(answers)))
    stats = httpx.get(f"{base}/admin/stats", timeout=60).json()
    decode = stats["replicas"][victim]["actor_ids"]["decode"]
    handle = ray.get_actor(decode["name"], namespace=decode["namespace"])
    assert handle._actor_id.hex() == decode["id"]
    ray.kill(handle, no_restart=True)
    for session_id, answer in answers.items():
        assert ask(base, session_id) == answer
    sessions = httpx.get(f"{base}/v1/sessions", timeout=30).json()["data"]
    assert {s["id"] for s in sessions if s["state"] == "ready"} == set(answers)


def test_killing_a_prefill_actor_keeps_every_cache_in_place(fleet):
    """Only the dead actor is replaced (deployments/serving/actor_restarts.py): the decode actor and
    its KV pool live on, so no session is recovered - each answers from the cache it had - and new
    loads work again once the new prefill actor is up."""
    base, _, answers = fleet
    victim = replica_of(base, next(iter(answers)))
    stats = httpx.get(f"{base}/admin/stats", timeout=60).json()
    actors = stats["replicas"][victim]["actor_ids"]
    wait_until(lambda: _recovery_idle(base), what="earlier recoveries to end")
    done_before = httpx.get(f"{base}/admin/health", timeout=30).json()["recovery"]["done"]
    ray.kill(ray.get_actor(actors["prefill"]["name"], namespace=actors["prefill"]["namespace"]), no_restart=True)
    for session_id, answer in answers.items():
        assert ask(base, session_id) == answer
    wait_until(lambda: httpx.get(f"{base}/admin/stats", timeout=60).json()["replicas"][victim]["actor_ids"][
        "prefill"]["id"] != actors["prefill"]["id"], what="a new prefill actor")
    after = httpx.get(f"{base}/admin/stats", timeout=60).json()["replicas"][victim]["actor_ids"]
    assert after["decode"] == actors["decode"]  # the same decode actor, the same pool
    assert httpx.get(f"{base}/admin/health", timeout=30).json()["recovery"]["done"] == done_before
    create_session(base, document(8) + " (after the prefill actor died)")


def test_killing_the_control_plane_loses_no_session(fleet):
    base, _, answers = fleet
    actor = httpx.get(f"{base}/admin/stats", timeout=60).json()["cluster"]["actor"]
    handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
    assert handle._actor_id.hex() == actor["id"]
    ray.kill(handle, no_restart=True)  # Serve's controller replaces the dead replica
    wait_until(lambda: _healthy(base), what="control plane back")
    for session_id, answer in answers.items():
        assert ask(base, session_id) == answer


def _recovery_idle(base: str) -> bool:
    recovery = httpx.get(f"{base}/admin/health", timeout=30).json()["recovery"]
    return recovery["waiting"] + recovery["running"] == 0


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/admin/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def test_drain_empties_a_replica(fleet):
    base, _, answers = fleet
    event = httpx.post(f"{base}/admin/drain", json={"replica": "replica-1"}, timeout=30).json()
    done = wait_event(base, event["event_id"])
    assert done["status"] == "done", done
    wait_until(lambda: all(replica_of(base, s) == "replica-0" for s in answers),
               what=f"drain ({done}; {[httpx.post(f'{base}/admin/lookup', json={'session_id': s}).json() for s in answers]})")
    for session_id, answer in answers.items():
        assert ask(base, session_id) == answer
