"""The ingress's PlainRouter (no Ray): prompts planned as a replica plans them, routed by prefix
affinity in the caller's scope, bounded by in-flight load."""

from __future__ import annotations

import pytest

from deployments.config import PlainRequestConfig
from deployments.engine.prompt import PromptError
from deployments.ingress.plain_router import PlainRouter
from deployments.common.prefix_scope import prefix_scope

DOC = "The supplier in Porto ships the housings. " * 30


def chat(question: str, doc: str = DOC) -> list[dict]:
    return [{"role": "system", "content": doc}, {"role": "user", "content": question}]


def test_questions_on_one_document_follow_its_prefix():
    router = PlainRouter(PlainRequestConfig(), ["replica-0", "replica-1"], "m")
    alice = prefix_scope("alice")
    first = router.pick(chat("Who ships the housings?"), None, alice)
    assert first.matched_blocks == 0
    for question in ("Where is the supplier?", "What ships from Porto?"):
        again = router.pick(chat(question), None, alice)
        assert again.replica_id == first.replica_id and again.matched_blocks > 0
    other_doc = router.pick(chat("Q", doc="Another document entirely. " * 30), None, alice)
    assert other_doc.replica_id != first.replica_id                        # new prefixes spread
    assert router.pick(chat("Q"), {"name": "none"}, alice).matched_blocks == 0   # another press: another prefix
    assert router.pick(chat("Q"), None, prefix_scope("bob")).matched_blocks == 0  # another owner: no affinity
    assert router.counters() == {"plain_routed_new": 4, "plain_routed_prefix": 2}


def test_a_busy_holder_is_skipped_and_loads_are_counted():
    router = PlainRouter(PlainRequestConfig(routing={"max_imbalance": 1}), ["replica-0", "replica-1"], "m")
    holder = router.pick(chat("Q1"), None, "s").replica_id
    for _ in range(2):
        router.started(holder)
    overflow = router.pick(chat("Q2"), None, "s")
    assert overflow.replica_id != holder and overflow.matched_blocks == 0 and router.counters()["plain_routed_overloaded"] == 1
    router.started(overflow.replica_id)
    router.finished(holder)                           # now both hold the prefix, each with one in flight
    assert router.pick(chat("Q3"), None, "s").matched_blocks > 0
    router.finished(holder), router.finished(holder)
    assert router.in_flight[holder] == 0


def test_round_robin_is_the_baseline_and_bad_prompts_are_errors():
    router = PlainRouter(PlainRequestConfig(routing={"policy": "round_robin"}), ["replica-0", "replica-1"], "m")
    assert [router.pick(chat("Q"), None, "s").replica_id for _ in range(4)] == ["replica-0", "replica-1"] * 2
    with pytest.raises(PromptError):
        router.pick([{"role": "wizard", "content": "x"}], None, "s")


def test_a_replica_that_lost_its_actors_is_excluded_and_its_prefixes_forgotten():
    router = PlainRouter(PlainRequestConfig(), ["replica-0", "replica-1"], "m")
    holder = router.pick(chat("Q1"), None, "s").replica_id
    other = router.pick(chat("Q2"), None, "s", exclude=frozenset({holder}))
    assert other.replica_id != holder and other.matched_blocks == 0   # not where the prefix is: excluded
    router.lost(holder)
    router.lost(other.replica_id)
    assert router.pick(chat("Q3"), None, "s").matched_blocks == 0     # both lost their stored prefixes
