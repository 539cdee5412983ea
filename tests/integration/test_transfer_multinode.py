"""Moving a compressed session between two nodes of a (simulated) Ray cluster.

``ray.cluster_utils.Cluster`` runs two raylets on this machine, tagged with the custom
resources ``node_a`` and ``node_b``; actors pinned to each are separate processes on separate
Ray nodes, so node-local shortcuts (the local backend, a shared object store) do not apply.
"""

from __future__ import annotations

import pytest
import ray
from ray.cluster_utils import Cluster

from kvpool import pack, unpack
from transfer import FailureReason, KVExpectation, TransferState, make_backend, start_transfer
from transfer.testing import EndpointActor, same_cache, synthetic_session

pytestmark = pytest.mark.integration

CROSS_NODE_BACKENDS = ["nixl", "collective", "object_store"]


@pytest.fixture(scope="module")
def two_nodes():
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"node_a": 1}, "object_store_memory": 768 << 20, "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=768 << 20)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def node_actors(two_nodes):
    """One endpoint actor on node A and one on node B (shared by the tests of this module)."""
    on_a = EndpointActor.options(resources={"node_a": 0.01}).remote()
    on_b = EndpointActor.options(resources={"node_b": 0.01}).remote()
    where_a, where_b = ray.get([on_a.where.remote(), on_b.where.remote()], timeout=120)
    yield on_a, on_b, where_a, where_b


def test_actors_run_on_different_nodes(node_actors):
    _, _, where_a, where_b = node_actors
    assert where_a["node_id"] != where_b["node_id"]


@pytest.mark.parametrize("backend_name", CROSS_NODE_BACKENDS)
@pytest.mark.parametrize("ragged", [False, True], ids=["dense", "ragged"])
def test_compressed_session_moves_from_node_a_to_node_b(node_actors, backend_name, ragged):
    on_a, on_b, _, _ = node_actors
    ckv = synthetic_session(4096, seed=21, ragged=ragged, compression_ratio=0.5)
    key = f"session-{backend_name}-{ragged}"
    nbytes = ray.get(on_a.offer.remote(key, pack(ckv)), timeout=120)

    status = start_transfer(make_backend(backend_name), on_a, on_b, key, expect=KVExpectation.like(ckv),
                                              timeout_s=120).result(180)

    assert status.state == TransferState.DONE and status.backend == backend_name
    assert status.bytes_moved == nbytes
    moved = ray.get(on_b.take.remote(key), timeout=120)
    assert moved is not None and same_cache(unpack(moved), ckv)


def test_local_backend_refuses_endpoints_on_different_nodes(node_actors):
    on_a, on_b, _, _ = node_actors
    ray.get(on_a.offer.remote("local-refused", pack(synthetic_session(64))), timeout=120)

    status = start_transfer(make_backend("local"), on_a, on_b, "local-refused", timeout_s=60).wait(90)

    assert (status.state, status.reason) == (TransferState.FAILED, FailureReason.UNAVAILABLE)
    assert "one node" in status.message


def test_auto_uses_a_cross_node_backend_between_nodes_and_local_within_one(node_actors):
    on_a, on_b, _, _ = node_actors
    neighbour = EndpointActor.options(resources={"node_a": 0.01}).remote()
    ckv = synthetic_session(256, seed=3)
    ray.get(on_a.offer.remote("auto", pack(ckv)), timeout=120)
    auto = make_backend("auto")

    across = start_transfer(auto, on_a, on_b, "auto", timeout_s=120).result(180)
    within = start_transfer(auto, on_a, neighbour, "auto", timeout_s=120).result(180)

    assert across.backend == "nixl"  # first cross-node choice in AUTO_ORDER, available on CPU
    assert within.backend == "local"
    assert same_cache(unpack(ray.get(neighbour.take.remote("auto"), timeout=120)), ckv)
    ray.kill(neighbour)


@pytest.fixture(scope="module")
def real_session(engine):
    """A real prefilled, pruned cache (embedded model, knorm 0.5) and its greedy answer before any move."""
    from deployments.engine.sampling import SamplingParams
    from kvpool import PressSpec

    filler = "The committee discussed the annual budget, the new library wing and other matters. " * 30
    context = filler + "The secret code of the vault is 7341. Alice was born in Lisbon. " + filler
    ckv = engine.prefill(context, PressSpec(name="knorm", compression_ratio=0.5))
    question, sampling = "What is the secret code of the vault?", SamplingParams(max_tokens=24)
    _, tokens_before, _ = engine.answer(ckv, question, sampling)
    assert tokens_before
    return ckv, question, sampling, tokens_before


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", CROSS_NODE_BACKENDS)
def test_greedy_answer_is_token_identical_after_moving_across_nodes(node_actors, engine, real_session,
                                                                    backend_name):
    """The real cache answers token for token the same after a move from node A to node B."""
    ckv, question, sampling, tokens_before = real_session
    on_a, on_b, _, _ = node_actors
    key = f"engine-session-{backend_name}"
    ray.get(on_a.offer.remote(key, pack(ckv)), timeout=120)

    status = start_transfer(make_backend(backend_name), on_a, on_b, key, expect=KVExpectation.like(ckv),
                                              timeout_s=120).result(180)
    moved = unpack(ray.get(on_b.take.remote(key), timeout=120))
    _, tokens_after, _ = engine.answer(moved, question, sampling)

    assert status.state == TransferState.DONE, status
    assert same_cache(moved, ckv)
    assert tokens_after == tokens_before
