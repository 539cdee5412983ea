"""Prefix reuse is scoped to the owner (+ cache_salt): the scope string (the index side is
tests/unit/kvpool/test_kvpool_prefix_scope.py)."""

from __future__ import annotations

from deployments.common.prefix_scope import prefix_scope


def test_scope_separates_owners_and_salts():
    alice, bob = prefix_scope("alice"), prefix_scope("bob")
    assert alice != bob and alice == prefix_scope("alice", None)
    assert prefix_scope("alice", "s1") not in (alice, prefix_scope("alice", "s2"), prefix_scope("bob", "s1"))
    assert prefix_scope("alice", share_across_owners=True) == prefix_scope("bob", share_across_owners=True) == ""
    assert prefix_scope("alice", "s", True) == prefix_scope("bob", "s", True) != ""
    assert "alice" not in alice  # opaque
