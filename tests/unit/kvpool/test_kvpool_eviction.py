"""Eviction policies: ranking rules, the registry, and each policy driving a real pool."""

from __future__ import annotations

import pytest

from kvpool import KVHandle, KVPoolConfig, SessionId, Tier, UnknownNameError
from kvpool.eviction import EvictionPolicy, make_policy, policy_names, register_policy

A, B, C = KVHandle("a"), KVHandle("b"), KVHandle("c")


def feed(policy: EvictionPolicy) -> EvictionPolicy:
    for handle in (A, B, C):
        policy.on_insert(handle)
    policy.on_access(A)
    policy.on_access(A)
    policy.on_access(B)
    return policy


@pytest.mark.parametrize(("name", "expected"), [
    ("lru", [C, A, B]),   # C never read, A read before B
    ("lfu", [C, B, A]),   # uses: C 1, B 2, A 3
    ("fifo", [A, B, C]),  # stored order, reads ignored
])
def test_policy_ranks_victims(name, expected):
    policy = feed(make_policy(name))
    assert policy.rank_victims({A, B, C}) == expected
    assert policy.rank_victims({A, C}) == [h for h in expected if h in (A, C)]
    policy.on_remove(expected[0])
    policy.on_remove(KVHandle("never-seen"))  # ignored
    assert set(policy.tracked()) == set(expected[1:])


def test_lfu_ties_go_to_least_recently_used():
    policy = make_policy("lfu")
    for handle in (A, B, C):
        policy.on_insert(handle)
    for handle in (C, B, A):
        policy.on_access(handle)
    assert policy.rank_victims([A, B, C]) == [C, B, A]


def test_unknown_policy_lists_valid_names():
    with pytest.raises(UnknownNameError, match="unknown eviction policy 'mru'; valid names: fifo, lfu, lru"):
        make_policy("mru")
    with pytest.raises(ValueError, match="valid names: fifo, lfu, lru"):
        KVPoolConfig(eviction_policy="mru")


def test_registering_a_policy_makes_it_available(make_pool, make_kv, entry_bytes):
    @register_policy
    class NewestFirst(EvictionPolicy):
        name = "newest_first_test"

        def __init__(self):
            self.order: list[KVHandle] = []

        def on_insert(self, handle):
            self.order.append(handle)

        def on_access(self, handle):
            pass

        def on_remove(self, handle):
            if handle in self.order:
                self.order.remove(handle)

        def rank_victims(self, candidates):
            return [h for h in reversed(self.order) if h in set(candidates)]

        def tracked(self):
            return self.order

    assert "newest_first_test" in policy_names()
    pool = make_pool(host=2 * entry_bytes, eviction_policy="newest_first_test")
    first, second = pool.put(make_kv(seed=1), SessionId("a")), pool.put(make_kv(seed=2), SessionId("b"))
    pool.put(make_kv(seed=3), SessionId("c"))
    assert first in pool and second not in pool


@pytest.mark.parametrize(("name", "victim"), [("lru", 1), ("lfu", 2), ("fifo", 0)])
def test_each_policy_picks_the_spill_victim_in_a_pool(make_pool, make_kv, entry_bytes, name, victim):
    pool = make_pool(host=3 * entry_bytes, disk=3 * entry_bytes, eviction_policy=name)
    handles = [pool.put(make_kv(seed=i), SessionId(f"s{i}")) for i in range(3)]
    for i in (1, 1, 2, 0):  # least recent: 1; least used: 0 and 2 tie, 2 less recent; first stored: 0
        pool.get(handles[i])
    newcomer = pool.put(make_kv(seed=9), SessionId("new"))
    assert [pool.info(h).tier for h in handles] == [Tier.DISK if i == victim else Tier.HOST for i in range(3)]
    assert pool.info(newcomer).tier is Tier.HOST
