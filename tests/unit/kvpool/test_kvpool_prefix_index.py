"""Compressed-prefix index: longest-prefix lookups, content addressing, refusals, and pool-driven removal."""

from __future__ import annotations

import random

import pytest

from kvpool import (CacheLayoutError, CompressedPrefixIndex, KVHandle, PressSpec, QueryAwareCacheError, SessionId,
                    UnknownHandleError, block_hashes)
from kvpool.recompress import knorm_recompressor

KNORM = PressSpec(name="knorm", compression_ratio=0.5)


@pytest.fixture
def setup(make_pool, make_kv):
    pool = make_pool(host=64 << 20, recompressor=knorm_recompressor)
    index = CompressedPrefixIndex(pool, block_tokens=16)
    prompt = tuple(random.Random(0).randrange(32_000) for _ in range(200))

    def store(length: int, press: PressSpec = KNORM, model: str = "synthetic-model", **more):
        ckv = make_kv(tokens=length, ratio=press.compression_ratio, token_ids=prompt[:length], press=press,
                      model_id=model, seed=length, **more)
        handle = pool.put(ckv, SessionId(f"prefix-{length}"))
        return handle, index.insert(handle)

    return pool, index, prompt, store


def test_longest_stored_prefix_wins(setup):
    pool, index, prompt, store = setup
    handles = {length: store(length)[0] for length in (32, 50, 130)}
    hit = index.lookup("synthetic-model", KNORM, prompt)
    assert (hit.handle, hit.prefix_tokens, hit.session_id) == (handles[130], 130, "prefix-130")
    assert pool.get(hit.handle).meta.token_ids == prompt[:130]
    assert index.lookup("synthetic-model", KNORM, prompt[:129]).prefix_tokens == 50  # 130 no longer fits
    assert index.lookup("synthetic-model", KNORM, prompt[:49]).prefix_tokens == 32
    assert index.lookup("synthetic-model", KNORM, prompt[:31]) is None
    assert index.lookup("synthetic-model", KNORM, prompt, max_prefix_tokens=129).prefix_tokens == 50


def test_exact_block_multiples_and_short_prefixes(setup):
    _, index, prompt, store = setup
    store(48)
    store(5)
    assert index.lookup("synthetic-model", KNORM, prompt[:48]).prefix_tokens == 48
    assert index.lookup("synthetic-model", KNORM, prompt[:47]).prefix_tokens == 5


def test_a_differing_token_model_or_press_misses(setup):
    _, index, prompt, store = setup
    store(64)
    changed = list(prompt)
    changed[40] += 1
    assert index.lookup("synthetic-model", KNORM, changed) is None
    changed_tail = list(prompt)
    changed_tail[63] += 1  # differs in the last token of the cache only
    assert index.lookup("synthetic-model", KNORM, changed_tail) is None
    assert index.lookup("other-model", KNORM, prompt) is None
    assert index.lookup("synthetic-model", PressSpec(name="knorm", compression_ratio=0.25), prompt) is None
    assert index.lookup("synthetic-model", KNORM.model_dump(), prompt).prefix_tokens == 64  # dict specs work
    stats = index.stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 4, pytest.approx(0.2))


def test_query_aware_caches_are_refused(setup):
    _, index, _, store = setup
    with pytest.raises(QueryAwareCacheError, match="query-aware"):
        store(40, query_agnostic=False)
    assert len(index) == 0


def test_caches_without_token_ids_are_refused(make_pool, make_kv):
    pool = make_pool(host=1 << 20)
    index = CompressedPrefixIndex(pool)
    handle = pool.put(make_kv(tokens=20).with_meta(token_ids=()), SessionId("a"))
    with pytest.raises(CacheLayoutError, match="token_ids is empty"):
        index.insert(handle)
    with pytest.raises(UnknownHandleError):
        index.insert(KVHandle("gone"))


def test_entries_vanish_when_the_pool_frees_evicts_or_recompresses(setup, make_pool, make_kv):
    pool, index, prompt, store = setup
    freed, _ = store(40)
    recompressed, _ = store(60)
    assert len(index) == 2
    pool.free(freed)
    pool.recompress(recompressed, 0.75)
    assert len(index) == 0 and index.lookup("synthetic-model", KNORM, prompt) is None

    small = make_pool(host=make_kv(tokens=32).nbytes)
    small_index = CompressedPrefixIndex(small)
    first = small.put(make_kv(tokens=32, token_ids=prompt[:32]), SessionId("a"))
    small_index.insert(first)
    small.put(make_kv(tokens=32, seed=1), SessionId("b"))  # evicts the first
    assert first not in small and len(small_index) == 0


def test_newest_live_entry_serves_duplicates(setup):
    pool, index, prompt, store = setup
    older, _ = store(40)
    newer, _ = store(40)
    assert index.lookup("synthetic-model", KNORM, prompt).handle == newer
    pool.free(newer)
    assert index.lookup("synthetic-model", KNORM, prompt).handle == older


def test_block_hashes_chain():
    tokens = list(range(40))
    hashes = block_hashes("m", KNORM, tokens, block_tokens=16)
    assert len(hashes) == 3 and len(set(hashes)) == 3
    assert block_hashes("m", KNORM, tokens[:32], 16) == hashes  # same full blocks, same chain
    changed_first = block_hashes("m", KNORM, [7] + tokens[1:], 16)
    assert changed_first[0] == hashes[0] and changed_first[1] != hashes[1] and changed_first[2] != hashes[2]
    assert block_hashes("m", KNORM, tokens[:16] + [99] + tokens[17:], 16)[1] == hashes[1]
    assert block_hashes("m", KNORM, tokens[:16] + [99] + tokens[17:], 16)[2] != hashes[2]
