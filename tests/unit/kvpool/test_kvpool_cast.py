"""A cache in another model dtype is converted (kvpool.cast) where a pool with a dtype stores it."""

from __future__ import annotations

import logging

import pytest
import torch

from kvpool import KVPool, KVPoolConfig, SessionId, cast_dtype, codecs
from kvpool.errors import CodecError
from kvpool.packing import pack, unpack


def test_float32_to_bfloat16_rounds_every_tensor_and_halves_the_bytes(make_kv):
    ckv = make_kv(ratio=0.25, ragged=True)
    cast = cast_dtype(ckv, "bfloat16")
    assert cast.meta.dtype == "bfloat16" and cast.nbytes * 2 == ckv.nbytes
    for a, b in zip(ckv.layers, cast.layers):
        assert b.keys.dtype == torch.bfloat16 and torch.equal(b.keys, a.keys.to(torch.bfloat16))
        assert torch.equal(b.values, a.values.to(torch.bfloat16)) and b.head_lengths == a.head_lengths
    back = cast_dtype(cast, "float32")
    assert back.meta.dtype == "float32" and torch.equal(back.layers[0].keys, cast.layers[0].keys.float())


def test_same_dtype_is_the_cache_itself_and_a_bad_name_is_an_error(make_kv):
    ckv = make_kv(dtype=torch.bfloat16)
    assert cast_dtype(ckv, "bfloat16") is ckv and cast_dtype(ckv, "torch.bfloat16") is ckv
    with pytest.raises(CodecError, match="not a torch dtype"):
        cast_dtype(ckv, "bf16")


def test_a_coded_cache_keeps_its_codes_and_decodes_to_the_new_dtype(make_kv):
    coded = codecs.encode(make_kv(), "int8")
    cast = cast_dtype(coded, "bfloat16")
    assert cast.meta.codec == "int8" and cast.nbytes == coded.nbytes
    assert cast.layers[0].keys is coded.layers[0].keys
    decoded = codecs.decode(cast)
    assert decoded.layers[0].keys.dtype == torch.bfloat16 and decoded.meta.dtype == "bfloat16"
    assert torch.equal(decoded.layers[0].keys, codecs.decode(coded).layers[0].keys.to(torch.bfloat16))


@pytest.mark.parametrize("codec", ["int8", "fp8"])
def test_quantizing_codecs_round_trip_a_bfloat16_cache(make_kv, codec):
    if codec == "fp8" and not codecs.fp8_supported():
        pytest.skip("no float8 on this torch build")
    ckv = make_kv(dtype=torch.bfloat16, ratio=0.5)
    restored = codecs.decode(codecs.encode(ckv, codec))
    for a, b in zip(ckv.layers, restored.layers):
        assert b.keys.dtype == torch.bfloat16
        error = (b.keys.float() - a.keys.float()).abs().amax() / a.keys.float().abs().amax()
        assert error < (0.02 if codec == "int8" else 0.08)


def test_pool_with_a_dtype_converts_on_put_and_logs_the_session(make_kv, caplog):
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 24), dtype="bfloat16")
    ckv = make_kv()
    with caplog.at_level(logging.INFO, logger="kvpool.pool"):
        handle = pool.put(unpack(pack(ckv)), SessionId("moved-in"))  # as a transfer delivers it
    stored = pool.get(handle, decoded=True)
    assert stored.meta.dtype == "bfloat16" and stored.layers[0].keys.dtype == torch.bfloat16
    assert pool.info(handle).nbytes == ckv.nbytes // 2
    assert any("moved-in" in r.getMessage() and "float32" in r.getMessage() for r in caplog.records)


def test_pool_without_a_dtype_keeps_what_it_is_given(make_kv):
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 24))
    handle = pool.put(make_kv(), SessionId("s"))
    assert pool.get(handle).meta.dtype == "float32"


def test_a_bfloat16_cache_travels_packed_with_its_dtype(make_kv):
    ckv = make_kv(dtype=torch.bfloat16, ratio=0.5, ragged=True)
    packed = pack(ckv)
    assert packed.manifest["meta"]["dtype"] == "bfloat16"
    back = unpack(packed)
    assert back.meta.dtype == "bfloat16" and back.nbytes == ckv.nbytes
    assert all(torch.equal(a.keys, b.keys) and b.keys.dtype == torch.bfloat16 for a, b in zip(ckv.layers, back.layers))
