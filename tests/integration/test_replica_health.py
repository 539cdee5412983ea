"""A busy PrefillActor still answers the replica's health check (its ``ready`` runs on its own
thread), so a queue of long prefills is never mistaken for a dead actor - which would make the
replica kill both actors and throw away every session they hold. And a client's prefill does not
wait out a background one (a recovery): that one gives way at the next decoder layer."""

from __future__ import annotations

import time

import pytest
import ray

from tests.conftest import document
from tests.serving import MODEL, ray_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def prefill_actor():
    from deployments.serving.prefill_actor import PrefillActor

    with ray_cluster(num_cpus=2):
        actor = PrefillActor.remote({"model_id": MODEL}, 1)
        ray.get(actor.ready.remote(), timeout=600)
        yield actor


def test_a_live_prefill_does_not_wait_for_a_background_prefill_running_before_it(prefill_actor):
    press = {"name": "knorm", "compression_ratio": 0.5}
    before = ray.get(prefill_actor.stats.remote(), timeout=10)["preemptions"]
    background = prefill_actor.prefill_background.remote(document(350), press)  # ~6k tokens: seconds
    time.sleep(1.0)  # its forward runs
    live = prefill_actor.prefill.remote(document(3), press)

    first, _ = ray.wait([live, background], num_returns=1, timeout=900)
    assert first == [live], "the live prefill waited for the background one"
    assert ray.get(prefill_actor.stats.remote(), timeout=10)["preemptions"] == before + 1  # answered while busy
    assert ray.get(background, timeout=900).meta.original_tokens > 5000  # redone after the live one, whole


def test_ready_answers_while_a_long_prefill_runs(prefill_actor):
    long_context = document(350)  # ~6k tokens: tens of seconds on one torch thread
    busy = [prefill_actor.prefill.remote(long_context, {"name": "knorm", "compression_ratio": 0.5})
            for _ in range(2)]
    time.sleep(1.0)  # the first prefill has started, the second is queued behind it

    assert ray.get(prefill_actor.ready.remote(), timeout=10) is True  # GetTimeoutError if queued behind them
    finished, _ = ray.wait(busy, num_returns=len(busy), timeout=0)

    assert not finished, "the prefills ended before the health check was asked: make the context longer"
    ckv = ray.get(busy[0], timeout=900)  # the prefills themselves are unaffected
    assert ckv.meta.original_tokens > 5000
