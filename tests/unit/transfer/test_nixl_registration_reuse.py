"""NIXL registers transfer memory once and reuses it: repeated transfers don't re-register."""

from __future__ import annotations

import pytest

from kvpool import pack
from transfer import TransferState, availability, make_backend
from transfer.testing import InProcessEndpoint, synthetic_session

pytestmark = pytest.mark.skipif(availability("nixl") is not None, reason="NIXL is not importable here")


def test_repeated_transfers_reuse_registered_buffers():
    source, target = InProcessEndpoint(), InProcessEndpoint()
    source.transfer_offer("session", pack(synthetic_session(512, seed=9)))
    backend = make_backend("nixl", chunk_bytes=1 << 20)

    states = [backend.start(source, target, "session", timeout_s=60).wait(90).state for _ in range(6)]
    pools = target.transfer_stats()["nixl.receiver"]

    assert states == [TransferState.DONE] * 6
    cpu = pools["cpu"]  # one process: the source's staging and the target's receive buffer share a pool
    assert cpu["registrations"] <= 2
    assert cpu["reuses"] >= 2 * 6 - cpu["registrations"]
    assert cpu["deregistrations"] == 0 and cpu["quarantined_bytes"] == 0
