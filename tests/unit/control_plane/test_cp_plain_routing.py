"""Plain-request routing (control_plane.routing), no Ray: prefix affinity with a load bound,
round robin, the prefix locator and the text block hashes."""

from __future__ import annotations

import pytest

from control_plane import ReplicaId
from control_plane.errors import UnknownPolicy
from control_plane.routing import (
    PlainRouteRequest, PlainRoutingConfig, PrefixAffinityRouting, PrefixLocator, RoundRobinRouting,
    least_loaded_replica, make_routing_policy, text_block_hashes,
)

R0, R1, R2 = ReplicaId("replica-0"), ReplicaId("replica-1"), ReplicaId("replica-2")
PRESS = {"name": "knorm", "compression_ratio": 0.5}
DOC = "The quarterly target is 4,200 units. " * 40


def request(prefix, scope: str = "alice", block_chars: int = 64) -> PlainRouteRequest:
    return PlainRouteRequest(text_block_hashes(scope, "m", PRESS, prefix, block_chars))


def route(policy, req, loads):
    decision = policy.choose(req, loads)
    policy.observe(req, decision)
    return decision


def test_the_second_request_for_a_document_goes_where_the_first_went():
    policy = PrefixAffinityRouting(max_imbalance=4)
    idle = {R0: 0, R1: 0, R2: 0}
    docs = [f"Document {i}. " + DOC for i in range(6)]
    first = [route(policy, request(d), idle).replica_id for d in docs]
    assert len(set(first)) == 3                                  # new prefixes spread over idle replicas
    again = [route(policy, request(d), idle) for d in docs]
    assert [d.replica_id for d in again] == first
    assert all(d.matched_blocks == len(request(docs[0]).block_hashes) for d in again)


def test_longest_prefix_wins_and_a_longer_prompt_extends_it():
    policy = PrefixAffinityRouting()
    idle = {R0: 0, R1: 0}
    short = [{"role": "system", "content": DOC}]
    longer = short + [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 " * 40}]
    on = route(policy, request(short), idle).replica_id
    other = R1 if on == R0 else R0
    policy.observe(request(DOC[:100]), policy.choose(request(DOC[:100]), {other: 0}))  # a shorter match elsewhere
    decision = route(policy, request(longer), idle)
    assert decision.replica_id == on and 0 < decision.matched_blocks < len(request(longer).block_hashes)


def test_overloaded_holder_falls_back_to_least_loaded():
    policy = PrefixAffinityRouting(max_imbalance=2)
    holder = route(policy, request(DOC), {R0: 0, R1: 0}).replica_id
    other = R1 if holder == R0 else R0
    assert policy.choose(request(DOC), {holder: 2, other: 0}).replica_id == holder       # within the bound
    decision = policy.choose(request(DOC), {holder: 3, other: 0})
    assert decision.replica_id == other and "overloaded" in decision.reason


def test_no_affinity_across_scopes_or_presses():
    policy = PrefixAffinityRouting()
    holder = route(policy, request(DOC, scope="alice"), {R0: 0, R1: 0}).replica_id
    assert policy.locator.longest(request(DOC, scope="bob").block_hashes) == {}
    other_press = PlainRouteRequest(text_block_hashes("alice", "m", {"name": "none"}, DOC, 64))
    assert policy.locator.longest(other_press.block_hashes) == {}
    assert policy.locator.longest(request(DOC, scope="alice").block_hashes) == {holder: len(request(DOC).block_hashes)}


def test_forgotten_or_absent_replicas_are_not_chosen():
    policy = PrefixAffinityRouting()
    route(policy, request(DOC), {R0: 0})
    assert policy.choose(request(DOC), {R1: 5, R2: 7}).replica_id == R1    # R0 is not a candidate now
    policy.forget_replica(R0)
    assert policy.locator.longest(request(DOC).block_hashes) == {} and len(policy.locator) == 0


def test_locator_is_bounded_lru():
    locator = PrefixLocator(max_blocks=4)
    a, b = request("a" * 64 * 3).block_hashes, request("b" * 64 * 3).block_hashes
    locator.record(a, R0)
    locator.record(b, R1)
    assert len(locator) == 4 and locator.longest(b) == {R1: 3} and locator.longest(a[:2]) == {}
    assert locator.longest(a) == {R0: 3}  # a chained hash stands for its whole prefix
    with pytest.raises(ValueError):
        PrefixLocator(0)


def test_block_hashes_chain_and_round_robin_and_registry():
    hashes = text_block_hashes("s", "m", PRESS, DOC, 64)
    assert len(hashes) == -(-len(DOC) // 64)
    assert text_block_hashes("s", "m", PRESS, DOC[:128] + "X" + DOC[129:], 64)[:2] == hashes[:2]
    assert text_block_hashes("s", "m", PRESS, DOC[:128] + "X" + DOC[129:], 64)[2] != hashes[2]
    assert text_block_hashes("s", "m", PRESS, "", 64) == ()
    rr = RoundRobinRouting()
    assert [rr.choose(request(DOC), {R1: 9, R0: 0}).replica_id for _ in range(3)] == [R0, R1, R0]
    assert least_loaded_replica({R0: 1, R1: 0, R2: 0}, turn=1) == R2
    assert isinstance(make_routing_policy(PlainRoutingConfig(policy="round_robin")), RoundRobinRouting)
    with pytest.raises(ValueError, match="unknown routing policy"):
        PlainRoutingConfig(policy="nearest")
    with pytest.raises(UnknownPolicy):
        make_routing_policy(PlainRoutingConfig.model_construct(policy="nearest"))
