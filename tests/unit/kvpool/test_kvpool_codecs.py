"""Storage codecs: round-trip error bounds, bytes, registry, and in-place (de)quantization in a pool."""

from __future__ import annotations

import pytest
import torch

from kvpool import CacheLayoutError, CapacityError, CodecError, SessionId, Tier, UnknownNameError, codecs
from kvpool.codecs import fp8_supported
from kvpool.packing import pack, unpack
from kvpool_helpers import assert_identical

SHAPES = [dict(), dict(ragged=True, ratio=0.3)]


def pairs(a, b):
    for left, right in zip(a.layers, b.layers):
        yield left.keys, right.keys
        yield left.values, right.values


@pytest.mark.parametrize("shape", SHAPES, ids=["dense", "ragged"])
def test_int8_round_trip_within_half_a_step_per_row(make_kv, shape):
    ckv = make_kv(seed=3, **shape)
    encoded = codecs.encode(ckv, "int8")
    assert encoded.meta.codec == "int8" and encoded.layers[0].keys.dtype == torch.int8
    assert encoded.layers[0].head_lengths == ckv.layers[0].head_lengths
    decoded = codecs.decode(encoded)
    assert decoded.meta == ckv.meta
    for original, restored in pairs(ckv, decoded):
        assert restored.dtype == original.dtype and restored.shape == original.shape
        step = original.abs().amax(dim=-1, keepdim=True) / 127
        assert bool(((original - restored).abs() <= step / 2 * (1 + 1e-5) + 1e-7).all())


def test_int8_bytes_at_most_half_plus_scales(make_kv):
    for dtype in (torch.float32, torch.bfloat16):
        ckv = make_kv(dtype=dtype, ratio=0.25)
        encoded = codecs.encode(ckv, "int8")
        scale_bytes = sum(t.numel() * t.element_size() for layer in encoded.layers for t in layer.scales.values())
        rows = sum(layer.keys.numel() // layer.keys.shape[-1] * 2 for layer in ckv.layers)
        assert scale_bytes == rows * 4  # one float32 per key/value vector
        assert encoded.nbytes <= 0.5 * ckv.nbytes + scale_bytes
        assert encoded.nbytes - scale_bytes == ckv.nbytes // torch.empty(0, dtype=dtype).element_size()


@pytest.mark.skipif(not fp8_supported(), reason="this torch build cannot cast to float8_e4m3fn")
@pytest.mark.parametrize("shape", SHAPES, ids=["dense", "ragged"])
def test_fp8_round_trip_within_e4m3_precision(make_kv, shape):
    ckv = make_kv(seed=4, **shape)
    encoded = codecs.encode(ckv, "fp8")
    assert encoded.layers[0].keys.dtype == torch.float8_e4m3fn
    decoded = codecs.decode(encoded)
    for original, restored in pairs(ckv, decoded):
        scale = original.abs().amax(dim=-1, keepdim=True) / 448
        bound = torch.maximum(original.abs() / 16, scale / 1024) * (1 + 1e-5)
        assert bool(((original - restored).abs() <= bound).all())


def test_zero_rows_and_outliers_survive_int8(make_kv):
    ckv = make_kv(seed=5)
    layer = ckv.layers[0]
    keys = layer.keys.clone()
    keys[0, 0] = 0.0  # an all-zero row must not become NaN
    keys[1, 1] *= 1000  # an outlier row must not flatten the others
    ckv = ckv.__class__((layer.__class__(keys, layer.values), *ckv.layers[1:]), ckv.meta)
    restored = codecs.decode(codecs.encode(ckv, "int8")).layers[0].keys
    assert bool(torch.isfinite(restored).all()) and bool((restored[0, 0] == 0).all())
    assert torch.allclose(restored[2], keys[2], atol=0.05)


def test_encoded_cache_packs_and_unpacks_bit_identically(make_kv):
    for codec in ["int8"] + (["fp8"] if fp8_supported() else []):
        encoded = codecs.encode(make_kv(ragged=True, ratio=0.5), codec)
        assert_identical(unpack(pack(encoded)), encoded)


def test_codec_misuse_is_refused_with_advice(make_kv):
    ckv = make_kv()
    encoded = codecs.encode(ckv, "int8")
    with pytest.raises(CodecError, match="decode it before"):
        codecs.get_codec("int8").encode(encoded)
    with pytest.raises(CodecError, match="kvpool.codecs.decode"):
        codecs.get_codec("fp8").decode(encoded)
    with pytest.raises(CacheLayoutError, match="decode it before use"):
        encoded.padded_layers()
    with pytest.raises(UnknownNameError, match="valid names: fp8, int8, none"):
        codecs.get_codec("int4")
    with pytest.raises(CodecError, match="meta.dtype"):
        codecs.encode(ckv.with_meta(dtype="bfloat16"), "int8")
    assert codecs.encode(ckv, "none") is ckv and codecs.decode(ckv) is ckv


def test_pool_quantize_and_dequantize_in_place(make_pool, make_kv, entry_bytes, event_log):
    pool = make_pool(host=2 * entry_bytes, disk=2 * entry_bytes)
    log = event_log(pool)
    ckv = make_kv(seed=1)
    on_disk, in_host = pool.put(ckv, SessionId("a")), pool.put(make_kv(seed=2), SessionId("b"))
    pool.put(make_kv(seed=3), SessionId("c"))
    assert pool.info(on_disk).tier is Tier.DISK
    info = pool.quantize(on_disk, "int8")
    assert info.codec == "int8" and info.tier is Tier.DISK and info.nbytes < entry_bytes * 0.3
    assert pool.usage()["disk"]["held_bytes"] == info.nbytes
    event = log.events[-1]
    assert (event.kind.value, event.nbytes, event.previous_nbytes) == ("quantized", info.nbytes, entry_bytes)
    assert pool.quantize(on_disk, "int8").nbytes == info.nbytes  # already int8: nothing happens
    assert log.events[-1] is event
    restored = pool.dequantize(on_disk)
    assert restored.codec == "none" and restored.nbytes == entry_bytes
    assert log.events[-1].kind.value == "dequantized"
    assert torch.allclose(pool.get(on_disk, promote=False).layers[0].keys, ckv.layers[0].keys, atol=0.05)
    assert pool.quantize(in_host, "int8").tier is Tier.HOST
    pool.audit()


def test_dequantize_refused_when_the_tier_cannot_grow(make_pool, make_kv, entry_bytes):
    pool = make_pool(host=entry_bytes)
    handle = pool.put(make_kv(), SessionId("a"), codec="int8")
    pool.put(make_kv(seed=1), SessionId("b"), codec="int8", pin=True)
    with pytest.raises(CapacityError):
        pool.dequantize(handle)
    assert pool.info(handle).codec == "int8"
    pool.audit()
