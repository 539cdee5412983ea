"""One contract for every transfer backend: the same assertions against each of them.

Each backend runs between two Ray actors on one node ("actors": real processes, real Ray) and
between two in-process endpoints ("inproc": no Ray needed, except object_store). Faults are
injected through ``transfer.Fault`` so that each backend's own detection is what fails the ticket.
"""

from __future__ import annotations

import threading

import pytest
import ray

from kvpool import pack, unpack
from transfer import FailureReason, Fault, KVExpectation, TransferFailedError, TransferState, make_backend, start_transfer
from transfer.testing import EndpointActor, InProcessEndpoint, same_cache, synthetic_session, tokens_for_bytes

BACKENDS = ["fake", "local", "object_store", "nixl", "collective"]
# fast failure detection keeps the suite short; defaults are larger
FAST = {"arrival_grace_s": 0.5, "settle_s": 5.0}


def _params():
    for topology in ("actors", "inproc"):
        for name in BACKENDS:
            needs_ray = topology == "actors" or name == "object_store"
            yield pytest.param((name, topology), id=f"{name}-{topology}",
                               marks=[pytest.mark.integration] if needs_ray else [])


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, object_store_memory=1536 << 20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class Side:
    """One endpoint under test, the same API for an actor and an in-process object."""

    def __init__(self, endpoint, is_actor: bool):
        self.endpoint = endpoint
        self.is_actor = is_actor

    def _call(self, method, *args, **kwargs):
        if self.is_actor:
            return ray.get(getattr(self.endpoint, method).remote(*args, **kwargs), timeout=120)
        return getattr(self.endpoint, method)(*args, **kwargs)

    def offer(self, key, ckv):
        packed = pack(ckv)
        if self.is_actor:
            return self._call("offer", key, packed)
        self.endpoint.transfer_offer(key, packed)
        return packed.nbytes

    def take(self, key):
        packed = self._call("take", key) if self.is_actor else self.endpoint.transfer_take(key)
        return None if packed is None else unpack(packed)

    def kill(self):
        if self.is_actor and ray.is_initialized():  # after ray.shutdown the actor is gone anyway
            ray.kill(self.endpoint)


def _make_pair(topology: str) -> tuple[Side, Side]:
    if topology == "actors":
        return Side(EndpointActor.remote(), True), Side(EndpointActor.remote(), True)
    return Side(InProcessEndpoint(), False), Side(InProcessEndpoint(), False)


@pytest.fixture(scope="module")
def shared_pairs():
    pairs: dict[str, tuple[Side, Side]] = {}
    yield pairs
    for pair in pairs.values():
        for side in pair:
            side.kill()


@pytest.fixture(params=list(_params()))
def case(request, shared_pairs):
    """(backend name, backend, source, target): endpoints shared by the tests of one topology."""
    name, topology = request.param
    if name == "object_store" or topology == "actors":
        request.getfixturevalue("ray_cluster")
    if topology not in shared_pairs:
        shared_pairs[topology] = _make_pair(topology)
    source, target = shared_pairs[topology]
    return name, make_backend(name, **FAST), source, target


@pytest.fixture
def fresh_pair(case):
    """A pair of endpoints of the case's topology that a test may kill."""
    _, _, source, _ = case
    pair = _make_pair("actors" if source.is_actor else "inproc")
    yield pair
    for side in pair:
        side.kill()


def _key(request, suffix: str = "") -> str:
    return f"{request.node.name}{suffix}"


# ---- round trip --------------------------------------------------------------------------------
@pytest.mark.parametrize("ragged", [False, True], ids=["dense", "ragged"])
def test_round_trip_moves_identical_cache(case, request, ragged):
    name, backend, source, target = case
    ckv = synthetic_session(384, seed=3, ragged=ragged)
    key = _key(request)
    nbytes = source.offer(key, ckv)

    status = start_transfer(backend, source.endpoint, target.endpoint, key, expect=KVExpectation.like(ckv),
                           timeout_s=60).result(90)

    assert status.state == TransferState.DONE
    assert status.backend == name
    assert status.bytes_moved == status.nbytes == nbytes
    received = target.take(key)
    assert received is not None and same_cache(received, ckv)


def test_retry_after_a_failure_succeeds(case, request):
    _, backend, source, target = case
    ckv = synthetic_session(128, seed=5)
    key = _key(request)
    source.offer(key, ckv)

    first = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30, fault=Fault.corrupt()).wait(60)
    second = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30).wait(60)

    assert (first.state, first.reason) == (TransferState.FAILED, FailureReason.CHECKSUM_MISMATCH)
    assert second.state == TransferState.DONE
    assert same_cache(target.take(key), ckv)


# ---- verification on arrival -------------------------------------------------------------------
@pytest.mark.parametrize("at_fraction", [0.0, 0.5, 1.0])
def test_corrupted_bytes_are_rejected(case, request, at_fraction):
    _, backend, source, target = case
    key = _key(request)
    source.offer(key, synthetic_session(256, seed=7))

    ticket = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30, fault=Fault.corrupt(at_fraction))
    status = ticket.wait(60)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.CHECKSUM_MISMATCH)
    assert "checksum" in status.message
    with pytest.raises(TransferFailedError) as raised:
        ticket.result(1)
    assert raised.value.reason == FailureReason.CHECKSUM_MISMATCH
    assert target.take(key) is None  # nothing landed


@pytest.mark.parametrize("mismatch", [{"model_id": "another-model"}, {"num_layers": 28}, {"head_dim": 128},
                                      {"dtype": "bfloat16"}])
def test_cache_for_another_model_or_layout_is_refused(case, request, mismatch):
    _, backend, source, target = case
    key = _key(request)
    ckv = synthetic_session(64, seed=1)
    source.offer(key, ckv)

    status = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30,
                           expect=KVExpectation.like(ckv, **mismatch)).wait(60)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.MANIFEST_MISMATCH)
    assert next(iter(mismatch)) in status.message
    assert target.take(key) is None


def test_cache_over_the_targets_size_cap_is_refused(case, request):
    _, backend, source, target = case
    key = _key(request)
    ckv = synthetic_session(64, seed=1)
    nbytes = source.offer(key, ckv)

    status = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30,
                           expect=KVExpectation.like(ckv, max_bytes=nbytes - 1)).wait(60)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.CAPACITY)


def test_unknown_key_fails_export(case, request):
    _, backend, source, target = case
    status = start_transfer(backend, source.endpoint, target.endpoint, _key(request, "-missing"), timeout_s=30).wait(60)
    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.EXPORT_FAILED)


# ---- faults ending in the right reason ---------------------------------------------------------
def test_dropped_data_is_data_lost(case, request):
    _, backend, source, target = case
    key = _key(request)
    source.offer(key, synthetic_session(128, seed=2))

    status = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30, fault=Fault.drop()).wait(60)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.DATA_LOST)
    assert target.take(key) is None


def test_delay_past_the_timeout_fails_with_timeout(case, request):
    _, backend, source, target = case
    key = _key(request)
    source.offer(key, synthetic_session(128, seed=2))

    ticket = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=1.0, fault=Fault.delay(30))
    status = ticket.wait(1.0 + FAST["settle_s"] + 5)  # ends at the deadline, not when the delay would

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.TIMEOUT)
    assert target.take(key) is None
    # the endpoints are clean afterwards: the next transfer goes through
    assert start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30).wait(60).state == TransferState.DONE


@pytest.mark.parametrize("side", ["source", "target"])
def test_peer_death_mid_transfer_fails_with_peer_died(case, request, fresh_pair, side):
    _, backend, _, _ = case
    source, target = fresh_pair
    key = _key(request)
    source.offer(key, synthetic_session(256, seed=4))

    status = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=30,
                           fault=Fault.die(side=side, at_fraction=0.5)).wait(60)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.PEER_DIED)
    if side == "source":
        assert target.take(key) is None


# ---- abort and concurrency ---------------------------------------------------------------------
def test_abort_ends_the_ticket_aborted_and_nothing_lands(case, request):
    _, backend, source, target = case
    key = _key(request)
    source.offer(key, synthetic_session(128, seed=6))
    ticket = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=60, fault=Fault.delay(30))
    transferring = threading.Event()
    for _ in range(600):  # bounded: at most 60 s
        if ticket.poll().state == TransferState.TRANSFERRING:
            transferring.set()
            break
        ticket.wait(0.1)

    assert transferring.is_set()
    assert ticket.abort() is True
    status = ticket.wait(30)
    assert status.state == TransferState.ABORTED
    assert status.reason is None
    assert ticket.abort() is False  # already terminal
    with pytest.raises(TransferFailedError):
        ticket.result(1)
    assert target.take(key) is None


def _two_each_way(backend, a: Side, b: Side, prefix: str, size: int, seed: int) -> None:
    """Start two transfers a -> b and two b -> a at once; all four arrive intact."""
    caches = {f"{prefix}-{i}": synthetic_session(size + 32 * i, seed=seed + i) for i in range(4)}
    keys = list(caches)
    for key in keys[:2]:
        a.offer(key, caches[key])
    for key in keys[2:]:
        b.offer(key, caches[key])
    tickets = [start_transfer(backend, a.endpoint, b.endpoint, key, timeout_s=60) for key in keys[:2]]
    tickets += [start_transfer(backend, b.endpoint, a.endpoint, key, timeout_s=60) for key in keys[2:]]
    assert [ticket.wait(90).state for ticket in tickets] == [TransferState.DONE] * 4
    for key in keys[:2]:
        assert same_cache(b.take(key), caches[key])
    for key in keys[2:]:
        assert same_cache(a.take(key), caches[key])


def test_concurrent_transfers_in_both_directions(case, request):
    """Two transfers each way at once."""
    _, backend, source, target = case
    _two_each_way(backend, source, target, _key(request), size=96, seed=10)


def test_pairs_form_in_both_directions_at_once(case, fresh_pair, request):
    """Fresh endpoints start two transfers each way at the same moment: for ``collective``, both
    gloo pairs form concurrently (in one process for ``inproc``) while transfers wait on each
    formation. Regression: the formations shared one TCPStore connection and stalled each other
    until the op timeout (in-process: 2 of 4 runs failed before the fix, 0 of 8 after)."""
    _, backend, _, _ = case
    a, b = fresh_pair
    _two_each_way(backend, a, b, _key(request), size=64, seed=40)


# ---- size --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_large_payload_round_trip(case, request):
    """>= 256 MiB in one session (float32, uncompressed, embedded-model layout)."""
    _, backend, source, target = case
    key = _key(request)
    spec = {"original_tokens": tokens_for_bytes(256 << 20), "seed": 11, "compression_ratio": 0.0}
    if source.is_actor:
        nbytes = ray.get(source.endpoint.offer_synthetic.remote(key, **spec), timeout=300)
    else:
        nbytes = source.offer(key, synthetic_session(**spec))

    status = start_transfer(backend, source.endpoint, target.endpoint, key, timeout_s=300).result(400)

    assert nbytes >= 256 << 20
    assert status.bytes_moved == nbytes
    if target.is_actor:
        assert ray.get(target.endpoint.received_equals_synthetic.remote(key, **spec), timeout=300)
    else:
        assert same_cache(target.take(key), synthetic_session(**spec))
