"""Re-compression: the knorm recompressor itself, and re-pruning instead of evicting under pressure."""

from __future__ import annotations

import pytest
import torch

from kvpool import EventKind, KVPool, KVPoolConfig, PressSpec, RecompressConfig, RecompressError, SessionId, codecs
from kvpool.recompress import current_ratio, knorm_recompressor


def test_dense_keeps_lowest_norm_keys_in_order(make_kv):
    ckv = make_kv(tokens=100, seed=7)
    pruned = knorm_recompressor(ckv, 0.75)
    assert pruned.meta.kept_tokens == 25 and current_ratio(pruned.meta) == pytest.approx(0.75)
    for before, after in zip(ckv.layers, pruned.layers):
        assert after.keys.shape == (3, 25, 64) and after.values.shape == (3, 25, 64)
        for head in range(3):
            norms = before.keys[head].norm(dim=-1)
            kept = norms.topk(25, largest=False).indices.sort().values
            assert torch.equal(after.keys[head], before.keys[head][kept])
            assert torch.equal(after.values[head], before.values[head][kept])
    assert ckv.layers[0].keys.shape == (3, 100, 64)  # the input is untouched


def test_ragged_shrinks_every_head_and_stays_ragged(make_kv):
    ckv = make_kv(tokens=120, ratio=0.25, ragged=True, seed=8)
    pruned = knorm_recompressor(ckv, 0.625)
    for before, after in zip(ckv.layers, pruned.layers):
        assert after.is_ragged and after.keys.shape[0] == sum(after.head_lengths)
        assert all(0 < a <= b for a, b in zip(after.head_lengths, before.head_lengths))
        assert sum(after.head_lengths) == pytest.approx(sum(before.head_lengths) / 2, abs=3)
    assert pruned.meta.kept_tokens == pytest.approx(45, abs=1)
    pruned.padded_layers()  # still a usable cache


def test_press_records_the_extra_stage(make_kv):
    ckv = make_kv(tokens=64, ratio=0.5)
    pruned = knorm_recompressor(ckv, 0.75)
    spec = PressSpec.model_validate(pruned.meta.press)
    assert spec.name == "composed" and [p.name for p in spec.presses] == ["knorm", "knorm"]
    assert spec.presses[1].compression_ratio == pytest.approx(0.5)
    again = PressSpec.model_validate(knorm_recompressor(pruned, 0.875).meta.press)
    assert len(again.presses) == 3  # composed presses are extended, not nested


def test_looser_ratio_is_a_no_op_and_bad_input_is_refused(make_kv):
    ckv = make_kv(tokens=64, ratio=0.5)
    assert knorm_recompressor(ckv, 0.25) is ckv
    with pytest.raises(RecompressError, match=r"\[0, 1\)"):
        knorm_recompressor(ckv, 1.0)
    with pytest.raises(Exception, match="decode"):
        knorm_recompressor(codecs.encode(ckv, "int8"), 0.75)


def pressure_pool(budget, enabled=True):
    config = KVPoolConfig(host_budget_bytes=budget,
                          recompress=RecompressConfig(enabled=enabled, step_ratio=0.25, max_compression_ratio=0.75))
    return KVPool(config, recompressor=knorm_recompressor)


def test_pressure_recompresses_instead_of_evicting(make_kv, entry_bytes, event_log):
    pool = pressure_pool(budget=2 * entry_bytes)
    log = event_log(pool)
    old = pool.put(make_kv(seed=1), SessionId("old"))
    pool.put(make_kv(seed=2), SessionId("mid"))
    pool.put(make_kv(seed=3), SessionId("new"))
    assert len(pool) == 3 and not [e for e in log.events if e.kind is EventKind.EVICTED]
    recompressed = [e for e in log.events if e.kind is EventKind.RECOMPRESSED]
    assert recompressed and all(e.nbytes < e.previous_nbytes for e in recompressed)
    assert recompressed[0].handle == old and "under pressure" in recompressed[0].detail
    assert pool.stats_snapshot()["totals"]["recompressed"] == len(recompressed)
    assert pool.usage()["host"]["held_bytes"] <= 2 * entry_bytes
    pool.audit()


def test_floor_is_respected_then_entries_are_evicted(make_kv, entry_bytes, event_log):
    pool = pressure_pool(budget=2 * entry_bytes)
    log = event_log(pool)
    for seed in range(12):
        pool.put(make_kv(seed=seed), SessionId(f"s{seed}"))
        for handle in pool.handles():
            assert current_ratio(pool.info(handle).meta) <= 0.75 + 1e-9
    assert [e for e in log.events if e.kind is EventKind.EVICTED]
    assert pool.usage()["host"]["held_bytes"] <= 2 * entry_bytes
    pool.audit()


def test_disabled_recompression_evicts(make_kv, entry_bytes, event_log):
    pool = pressure_pool(budget=2 * entry_bytes, enabled=False)
    log = event_log(pool)
    for seed in range(3):
        pool.put(make_kv(seed=seed), SessionId(f"s{seed}"))
    assert "recompressed" not in log.kinds() and log.kinds().count("evicted") == 1


def test_explicit_recompress_keeps_codec(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=4 * entry_bytes, recompressor=knorm_recompressor)
    handle = pool.put(make_kv(), SessionId("a"), codec="int8")
    before = pool.info(handle).nbytes
    info = pool.recompress(handle, 0.5)
    assert info.codec == "int8" and info.nbytes == pytest.approx(before / 2, rel=0.01)
    assert info.meta.kept_tokens == 32
    assert pool.recompress(handle, 0.25).nbytes == info.nbytes  # looser: no-op


def test_recompress_needs_a_recompressor(make_pool, make_kv):
    pool = make_pool(host=1 << 20)
    with pytest.raises(RecompressError, match="no recompressor"):
        pool.recompress(pool.put(make_kv(), SessionId("a")), 0.5)
    with pytest.raises(RecompressError, match="knorm_recompressor"):
        KVPool(KVPoolConfig(recompress=RecompressConfig(enabled=True)))


def test_broken_recompressor_is_reported(make_pool, make_kv):
    def encodes_its_output(ckv, ratio):
        return codecs.encode(knorm_recompressor(ckv, ratio), "int8")

    pool = make_pool(host=1 << 20, recompressor=encodes_its_output)
    with pytest.raises(RecompressError, match="must return a codec 'none' cache"):
        pool.recompress(pool.put(make_kv(), SessionId("a")), 0.5)


def test_keydiff_keeps_the_keys_least_like_the_mean_key_direction(make_kv):
    from kvpool.recompress import keydiff_recompressor, recompressor_for

    ckv = make_kv(tokens=80, seed=9)
    pruned = keydiff_recompressor(ckv, 0.5)
    assert pruned.meta.kept_tokens == 40
    for before, after in zip(ckv.layers, pruned.layers):
        for head in range(3):
            keys = before.keys[head].float()
            anchor = torch.nn.functional.normalize(keys, dim=-1).mean(dim=0, keepdim=True)
            similarity = torch.nn.functional.cosine_similarity(keys, anchor, dim=-1)
            kept = similarity.topk(40, largest=False).indices.sort().values
            assert torch.equal(after.keys[head], before.keys[head][kept])
    assert [p.name for p in PressSpec.model_validate(keydiff_recompressor(pruned, 0.75).meta.press).presses][-1] == \
        "keydiff"
    assert recompressor_for("knorm")(ckv, 0.5).meta.kept_tokens == 40
    with pytest.raises(RecompressError, match="keydiff"):
        recompressor_for("snapkv")
    with pytest.raises(ValueError, match="re-compression press"):
        RecompressConfig(press="snapkv")


def test_cache_only_scorers_keep_what_their_kvpress_press_keeps_at_prefill(engine):
    """Re-pruning an uncompressed cache with a scorer keeps exactly what the kvpress press keeps
    when it prunes at prefill (both score the stored, rotated keys): the prefill measurements of
    knorm / keydiff in the quality benchmark are measurements of re-compression with them."""
    from kvpool.recompress import recompressor_for

    context = "The vault code is 7341. " + "The committee discussed the annual budget at length. " * 12
    full = engine.prefill(context, PressSpec())
    for name in ("knorm", "keydiff"):
        pressed = engine.prefill(context, PressSpec(name=name, compression_ratio=0.5))
        repruned = recompressor_for(name)(full, 0.5)
        assert repruned.meta.kept_tokens == pressed.meta.kept_tokens
        for a, b in zip(repruned.layers, pressed.layers):
            assert torch.allclose(_norms(a.keys), _norms(b.keys)) and torch.allclose(_norms(a.values), _norms(b.values))


def _norms(rows: torch.Tensor) -> torch.Tensor:
    """Sorted per-head row norms ``[H, T]``: the same kept set compares equal whatever its order
    (kvpress keeps top-k order, the pool token order) and whichever of a repeated token's equal-norm
    copies a tie kept (layer 0: the same token has the same key norm at every position)."""
    return rows.norm(dim=-1).sort(dim=-1).values
