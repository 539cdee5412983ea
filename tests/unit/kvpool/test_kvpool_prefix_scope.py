"""The compressed-prefix index keeps scopes apart (the owner/cache_salt scope of deployments.common.prefix_scope)."""

from __future__ import annotations

import random

import pytest

from kvpool import CompressedPrefixIndex, PressSpec, SessionId

KNORM = PressSpec(name="knorm", compression_ratio=0.5)
ALICE, BOB = "scope-alice", "scope-bob"


@pytest.fixture
def index_with_alices_prefix(make_pool, make_kv):
    pool = make_pool(host=64 << 20)
    index = CompressedPrefixIndex(pool, block_tokens=16)
    prompt = tuple(random.Random(1).randrange(32_000) for _ in range(100))
    ckv = make_kv(tokens=80, ratio=0.5, token_ids=prompt[:80], press=KNORM, model_id="m", seed=1)
    index.insert(pool.put(ckv, SessionId("prefix:0")), scope=ALICE)
    return index, prompt


def test_a_stored_prefix_is_found_only_in_its_scope(index_with_alices_prefix):
    index, prompt = index_with_alices_prefix
    assert index.lookup("m", KNORM, prompt, scope=ALICE).prefix_tokens == 80
    assert index.lookup("m", KNORM, prompt, scope=BOB) is None
    assert index.lookup("m", KNORM, prompt, scope="scope-alice-salted") is None
    assert index.lookup("m", KNORM, prompt) is None  # the shared namespace is a scope of its own
