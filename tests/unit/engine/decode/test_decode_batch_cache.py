"""BatchCache against CompressedKV.padded_layers (the one-row layout) on dense, ragged (per-head)
and int8-decoded caches: every row's own columns hold exactly its padded cache, head padding is
listed in kvpress's (batch, head, seq) form, and join/leave/append never disturb the other rows."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.decode.batch_cache import BatchCache
from kvpool import codecs
from kvpool.compressed_kv import CompressedKV, KVMeta, LayerKV

LAYERS, HEADS, DIM = 3, 2, 4


def make_ckv(seed: int, length: int, ragged: bool = False) -> CompressedKV:
    g = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(LAYERS):
        if ragged:
            lengths = tuple(int(n) for n in torch.randint(1, length + 1, (HEADS,), generator=g))
            keys = torch.randn(sum(lengths), DIM, generator=g)
            values = torch.randn(sum(lengths), DIM, generator=g)
            layers.append(LayerKV(keys, values, head_lengths=lengths))
        else:
            layers.append(LayerKV(torch.randn(HEADS, length, DIM, generator=g), torch.randn(HEADS, length, DIM, generator=g)))
    meta = KVMeta(model_id="m", press={}, original_tokens=length, kept_tokens=length, next_position=length,
                  dtype="float32", num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM)
    return CompressedKV(tuple(layers), meta)


def join(cache: BatchCache, row_id: str, ckv: CompressedKV) -> None:
    pairs, pads = ckv.padded_layers()
    cache.join(row_id, [k for k, _ in pairs], [v for _, v in pairs], pads)


def row_view(cache: BatchCache, row_id: str, layer: int):
    """Row's own columns (keys, values, head pad) in column order."""
    b = cache.row_ids.index(row_id)
    cols = torch.nonzero(cache.valid[b, : cache.length], as_tuple=True)[0]
    lay = cache.layers[layer]
    pad = cache.head_pad[layer]
    pad = torch.zeros((HEADS, cols.numel()), dtype=torch.bool) if pad is None else pad[b][:, cols]
    return lay.keys[b][:, cols], lay.values[b][:, cols], pad


def assert_row_is(cache: BatchCache, row_id: str, ckv: CompressedKV) -> None:
    pairs, pads = ckv.padded_layers()
    for i, ((keys, values), pad) in enumerate(zip(pairs, pads)):
        got_k, got_v, got_pad = row_view(cache, row_id, i)
        n = keys.shape[2]
        expect_pad = torch.zeros((HEADS, n), dtype=torch.bool) if pad is None else pad
        assert torch.equal(got_pad[:, :n], expect_pad)
        real = ~expect_pad
        assert torch.equal(got_k[:, :n][real], keys[0][real]) and torch.equal(got_v[:, :n][real], values[0][real])


def int8(ckv: CompressedKV) -> CompressedKV:
    return codecs.decode(codecs.encode(ckv, "int8"))


CASES = {
    "dense": lambda: [make_ckv(1, 5), make_ckv(2, 9), make_ckv(3, 3)],
    "ragged": lambda: [make_ckv(4, 7, ragged=True), make_ckv(5, 4, ragged=True), make_ckv(6, 11, ragged=True)],
    "mixed+int8": lambda: [make_ckv(7, 6), int8(make_ckv(8, 10, ragged=True)), int8(make_ckv(9, 2))],
}


@pytest.mark.parametrize("case", list(CASES))
def test_rows_hold_their_padded_cache_through_join_append_leave(case):
    ckvs = CASES[case]()
    cache = BatchCache()
    for i, ckv in enumerate(ckvs):
        join(cache, f"r{i}", ckv)
        for j in range(i + 1):
            assert_row_is(cache, f"r{j}", ckvs[j])
    # one decode step: every row gets one new (real) column
    before = cache.row_columns()
    mask = cache.attention_mask(1)
    assert mask.shape == (3, cache.length + 1)
    new = torch.arange(3 * HEADS * DIM, dtype=torch.float32).reshape(3, HEADS, 1, DIM)
    for layer in cache.layers:
        layer.update(new, -new)
    assert cache.row_columns() == [n + 1 for n in before]
    for j in range(3):
        _, _, pad = row_view(cache, f"r{j}", 0)
        assert torch.equal(row_view(cache, f"r{j}", 0)[0][:, -1], new[j, :, 0]) and not pad[:, -1].any()
    cache.leave(["r1", "unknown"])
    assert cache.row_ids == ["r0", "r2"]
    for j in (0, 2):
        assert_row_is(cache, f"r{j}", ckvs[j])
        assert torch.equal(row_view(cache, f"r{j}", 0)[0][:, -1], new[j, :, 0])
    assert cache.length == max(cache.row_columns())  # columns no remaining row used were dropped


def test_masked_key_indices_list_exactly_the_head_padding():
    ckvs = [make_ckv(10, 6), make_ckv(11, 8, ragged=True)]
    cache = BatchCache()
    for i, ckv in enumerate(ckvs):
        join(cache, f"r{i}", ckv)
    for layer, masked in enumerate(cache.masked_key_indices()):
        expect = torch.zeros((2, HEADS, cache.length), dtype=torch.bool)
        _, pads = ckvs[1].padded_layers()
        if pads[layer] is not None:
            expect[1, :, : pads[layer].shape[1]] = pads[layer]
        got = torch.zeros_like(expect)
        if masked is not None:
            got[masked] = True
        assert torch.equal(got, expect)


def test_last_row_leaving_empties_the_cache():
    cache = BatchCache()
    join(cache, "a", make_ckv(12, 4))
    cache.leave(["a"])
    assert len(cache) == 0 and cache.length == 0 and cache.layers == []


def test_row_padding_as_masked_keys_covers_every_column_a_row_does_not_own():
    ckvs = [make_ckv(13, 3), make_ckv(14, 9, ragged=True)]
    cache = BatchCache()
    for i, ckv in enumerate(ckvs):
        join(cache, f"r{i}", ckv)
    assert cache.has_row_padding()
    rows = torch.zeros((2, HEADS, cache.length), dtype=torch.bool)
    for row, start, stop in cache.row_gaps():  # what fake_keys masks
        rows[row, :, start:stop] = True
    for heads_only in cache.masked_key_indices():  # what kvpress's patch masks
        got = rows.clone()
        if heads_only is not None:
            got[heads_only] = True
        expect = (~cache.valid[:, : cache.length]).unsqueeze(1).expand(-1, HEADS, -1).clone()
        if heads_only is not None:
            expect[heads_only] = True
        assert torch.equal(got, expect)
        assert heads_only is None or not rows[heads_only].any()  # head padding lies inside a row's columns


def block_of(ckvs: dict[str, CompressedKV], spare: int = 0) -> BatchCache:
    rows = {rid: ckv.padded_layers() for rid, ckv in ckvs.items()}
    return BatchCache.from_rows(list(rows), [[k for k, _ in pairs] for pairs, _ in rows.values()],
                                [[v for _, v in pairs] for pairs, _ in rows.values()],
                                [pads for _, pads in rows.values()], spare_columns=spare)


def test_a_block_of_rows_merges_into_a_batch_with_every_row_intact():
    ckvs = {"a": make_ckv(15, 5), "b": make_ckv(16, 9, ragged=True), "c": make_ckv(17, 3), "d": make_ckv(18, 40)}
    cache = BatchCache()
    join(cache, "a", ckvs["a"])
    cache.attention_mask(1)  # one decode step on "a" before the others join
    step = torch.ones((1, HEADS, 1, DIM))
    for layer in cache.layers:
        layer.update(step, step)
    block = block_of({k: ckvs[k] for k in ("b", "c", "d")}, spare=4)
    assert block.layers[0].buf_keys.shape[2] == 44  # longest row + spare: no doubling
    cache.merge(block)
    assert cache.row_ids == ["a", "b", "c", "d"] and cache.length == 40
    assert cache.layers[0].buf_keys.shape[2] == 41  # just enough for the next column
    for rid in ("b", "c", "d"):
        assert_row_is(cache, rid, ckvs[rid])
    assert cache.row_columns() == [6, 9, 3, 40]
    assert torch.equal(row_view(cache, "a", 0)[0][:, -1], step[0, :, 0])


def test_released_columns_become_zeroed_row_padding():
    cache = block_of({"a": make_ckv(19, 6), "b": make_ckv(20, 6)}, spare=3)
    cache.attention_mask(3)
    fed = torch.randn(2, HEADS, 3, DIM)
    for layer in cache.layers:
        layer.update(fed, fed)
    cache.release_columns(1, 7, 9)  # row b fed one real token, two padding tokens
    assert cache.row_columns() == [9, 7]
    for layer in cache.layers:
        assert not layer.keys[1, :, 7:9].any() and not layer.values[1, :, 7:9].any()
        assert torch.equal(layer.keys[0, :, 6:9], fed[0])
    assert cache.row_gaps() == [(1, 7, 9)]


def test_row_gaps_are_the_row_padding_as_column_ranges():
    cache = BatchCache()
    join(cache, "a", make_ckv(21, 5))
    join(cache, "b", make_ckv(22, 9))
    assert cache.row_gaps() == [(0, 5, 9)]
    cache.attention_mask(1)
    for layer in cache.layers:
        layer.update(torch.ones((2, HEADS, 1, DIM)), torch.ones((2, HEADS, 1, DIM)))
    assert cache.row_gaps() == [(0, 5, 9)]  # the new column belongs to both rows
    expect = (~cache.valid[:, : cache.length]).nonzero().tolist()
    assert sorted([r, c] for r, s, e in cache.row_gaps() for c in range(s, e)) == expect


def test_fake_keys_over_row_gaps_get_exactly_zero_attention():
    from deployments.engine.decode.fake_keys import _with_row_gaps

    seen = {}

    def attention(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
        seen["key"] = key.clone()
        weights = torch.softmax(query @ key.repeat_interleave(3, dim=1).transpose(-1, -2), dim=-1)
        return weights

    class Module:
        kvfleet_row_gaps = [(1, 2, 6)]

    g = torch.Generator().manual_seed(3)
    query, key = torch.randn(2, 6, 1, DIM, generator=g), torch.randn(2, 2, 8, DIM, generator=g)
    original = key.clone()
    weights = _with_row_gaps(attention)(Module(), query, key, key, None)
    assert torch.equal(weights[1, :, :, 2:6], torch.zeros_like(weights[1, :, :, 2:6]))
    assert (weights[0] > 0).all() and (weights[1, :, :, 6:] > 0).all()
    assert torch.equal(seen["key"][0], original[0]) and torch.equal(seen["key"][1, :, 6:], original[1, :, 6:])
    assert not torch.equal(seen["key"][1, :, 2:6], original[1, :, 2:6])
