"""CompressedKV contract with the real model: pack/unpack, exact bytes, no mutation by questions."""

import pytest
import torch

from deployments.engine.sampling import SamplingParams
from kvpool import ChecksumError, PackedKV, PressSpec, pack, unpack
from tests.conftest import document

GREEDY = SamplingParams(max_tokens=16)
QUESTIONS = ["What is the secret code of the vault?", "Where was Alice born?", "When is the meeting?"]


@pytest.mark.parametrize("spec", [{"name": "knorm", "compression_ratio": 0.5},
                                  {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "knorm"}]}],
                         ids=["dense", "ragged"])
def test_pack_unpack_generates_identically(engine, spec):
    ckv = engine.prefill(document(20), PressSpec.model_validate(spec))
    restored = unpack(pack(ckv))
    assert restored.meta == ckv.meta
    assert restored.nbytes == ckv.nbytes
    assert engine.answer(restored, QUESTIONS[0], GREEDY) == engine.answer(ckv, QUESTIONS[0], GREEDY)


def test_corrupted_buffer_is_rejected(engine):
    packed = pack(engine.prefill(document(5), PressSpec(name="knorm", compression_ratio=0.5)))
    corrupted = packed.buffer.clone()
    corrupted[len(corrupted) // 2] ^= 0xFF
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        unpack(PackedKV(corrupted, packed.manifest))
    with pytest.raises(ChecksumError, match="bytes"):
        unpack(PackedKV(packed.buffer[:-4], packed.manifest))


@pytest.mark.parametrize("name", ["knorm", "streaming_llm", "expected_attention", "keydiff"])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_nbytes_tracks_ratio_for_query_agnostic_presses(engine, name, ratio):
    context = document(20)
    full = engine.prefill(context, PressSpec())
    ckv = engine.prefill(context, PressSpec(name=name, compression_ratio=ratio))
    assert ckv.meta.query_agnostic
    expected = (1 - ratio) * full.nbytes
    assert abs(ckv.nbytes - expected) / expected < 0.02
    manual = sum(t.numel() * t.element_size() for layer in ckv.layers for t in (layer.keys, layer.values))
    assert ckv.nbytes == manual


@pytest.mark.parametrize("spec", [{"name": "snapkv", "compression_ratio": 0.5},
                                  {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "snapkv"}]}],
                         ids=["dense", "ragged"])
def test_questions_never_mutate_the_stored_cache(engine, spec):
    ckv = engine.prefill(document(20), PressSpec.model_validate(spec))
    before = [(layer.keys.clone(), layer.values.clone()) for layer in ckv.layers]
    alone = [engine.answer(engine.prefill(document(20), PressSpec.model_validate(spec)), q, GREEDY)
             for q in QUESTIONS]
    together = [engine.answer(ckv, q, GREEDY) for q in QUESTIONS]
    assert together == alone
    for (keys, values), layer in zip(before, ckv.layers):
        assert torch.equal(keys, layer.keys) and torch.equal(values, layer.values)


def test_interleaved_generations_match_sequential(engine):
    """Two streams stepping alternately (as concurrent requests do) answer as if alone."""
    a = engine.prefill(document(10), PressSpec(name="knorm", compression_ratio=0.5))
    b = engine.prefill(document(12), PressSpec.model_validate(
        {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "knorm"}]}))
    sequential = [engine.answer(a, QUESTIONS[0], GREEDY)[0], engine.answer(b, QUESTIONS[1], GREEDY)[0]]
    streams = [engine.generate(a, QUESTIONS[0], GREEDY), engine.generate(b, QUESTIONS[1], GREEDY)]
    texts, live = ["", ""], [True, True]
    while any(live):
        for i, stream in enumerate(streams):
            if live[i]:
                step = next(stream, None)
                if step is None:
                    live[i] = False
                else:
                    texts[i] += step.text
    assert texts == sequential
