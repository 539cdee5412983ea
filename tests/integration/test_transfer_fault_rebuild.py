"""A migration whose transfers are corrupted in flight (fake backend, injected faults) ends in a
rebuild on the target by re-prefilling the stored context - never in a wrong answer."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import document
from tests.integration.test_fleet_control import ask, replica_of, wait_event
from tests.serving import create_session, ray_cluster, serve_app, small_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PORT = 8060


def test_corrupted_transfers_fall_back_to_rebuild():
    args = small_args(transfer={"backend": "fake", "faults": ["corrupt", "corrupt", "corrupt"]},
                      control={"migration_retries": 2})
    with ray_cluster(4), serve_app(PORT, args) as base:
        session = create_session(base, document(12))
        answer = ask(base, session["id"])
        source = replica_of(base, session["id"])
        target = "replica-1" if source == "replica-0" else "replica-0"
        event = httpx.post(f"{base}/admin/move", timeout=30,
                           json={"session_id": session["id"], "target_replica": target}).json()
        done = wait_event(base, event["event_id"])
        assert done["status"] == "done", done
        assert replica_of(base, session["id"]) == target
        counters = httpx.get(f"{base}/admin/health", timeout=30).json()["counters"]
        assert counters.get("rebuild_fallbacks") == 1, counters
        cluster = httpx.get(f"{base}/admin/stats", timeout=30).json()["cluster"]
        assert cluster["runner"].get("transfer_failed_checksum_mismatch") == 3, cluster["runner"]
        assert cluster["runner"].get("rebuilds") == 1
        assert ask(base, session["id"]) == answer
