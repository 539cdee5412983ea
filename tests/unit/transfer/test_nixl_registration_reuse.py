"""NIXL registers transfer memory once and reuses it: repeated transfers don't re-register.

The registration pool is per process, so other tests in the same pytest process may have
registered buffers already: the test counts what changes after one warm-up transfer.
"""

from __future__ import annotations

import pytest

from kvpool import pack
from transfer import TransferState, availability, make_backend, start_transfer
from transfer.testing import InProcessEndpoint, synthetic_session

pytestmark = pytest.mark.skipif(availability("nixl") is not None, reason="NIXL is not importable here")


def test_repeated_transfers_reuse_registered_buffers():
    source, target = InProcessEndpoint(), InProcessEndpoint()
    source.transfer_offer("session", pack(synthetic_session(512, seed=9)))
    backend = make_backend("nixl", chunk_bytes=1 << 20)

    def transfer() -> TransferState:
        return start_transfer(backend, source, target, "session", timeout_s=60).wait(90).state

    assert transfer() == TransferState.DONE
    before = dict(target.transfer_stats()["nixl.receiver"]["cpu"])
    states = [transfer() for _ in range(5)]
    after = target.transfer_stats()["nixl.receiver"]["cpu"]

    assert states == [TransferState.DONE] * 5
    # one process: the source's staging and the target's receive buffer share a pool
    assert after["registrations"] == before["registrations"]
    assert after["reuses"] - before["reuses"] >= 2 * 5
    assert after["deregistrations"] == before["deregistrations"]
    assert after["quarantined_bytes"] == 0
