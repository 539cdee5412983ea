"""KVPool with real caches from the model: a disk round trip and an int8 round trip keep answers."""

import pytest

from deployments.engine.sampling import SamplingParams
from kvpool import PressSpec
from kvpool.config import KVPoolConfig
from kvpool.handles import SessionId
from kvpool.pool import KVPool
from tests.conftest import document

GREEDY = SamplingParams(max_tokens=16)
QUESTIONS = ["What is the secret code of the vault?", "Where was Alice born?"]


@pytest.mark.parametrize("spec", [{"name": "knorm", "compression_ratio": 0.5},
                                  {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "knorm"}]}],
                         ids=["dense", "ragged"])
def test_disk_tier_round_trip_gives_identical_answers(engine, tmp_path, spec):
    ckv = engine.prefill(document(10), PressSpec.model_validate(spec))
    pool = KVPool(KVPoolConfig(host_budget_bytes=ckv.nbytes + 1, disk_dir=tmp_path, disk_budget_bytes=1 << 30))
    first = pool.put(ckv, SessionId("a"))
    pool.put(engine.prefill(document(10), PressSpec.model_validate(spec)), SessionId("b"))  # spills "a" to disk
    assert pool.info(first).tier.value == "disk"
    restored = pool.get(first)
    assert [engine.answer(restored, q, GREEDY) for q in QUESTIONS] == [engine.answer(ckv, q, GREEDY) for q in QUESTIONS]


def test_int8_codec_halves_bytes_and_keeps_the_needle(engine):
    ckv = engine.prefill(document(10), PressSpec(name="none"))
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 30))
    handle = pool.put(ckv, SessionId("s"))
    pool.quantize(handle, "int8")
    assert pool.info(handle).nbytes <= 0.5 * ckv.nbytes + 64 * 1024
    answer = engine.answer(pool.get(handle, decoded=True), QUESTIONS[0], GREEDY)[0]
    assert "7341" in answer
