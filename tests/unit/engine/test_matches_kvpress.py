"""kvfleet's engine answers exactly like kvpress's own pipeline (greedy, same context and questions),
in float32 and in bfloat16 (both run the same model object, so in the same dtype)."""

import pytest

from deployments.engine.presses import resolve
from deployments.engine.sampling import SamplingParams
from kvpool import PressSpec
from tests.conftest import DTYPES, document


@pytest.fixture(scope="module", params=DTYPES)
def dtype(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def engine(engines, dtype):
    return engines(dtype)


@pytest.fixture(scope="module")
def kvpress_pipeline(kvpress_pipelines, dtype):
    return kvpress_pipelines(dtype)

def kvpress_text(engine, question_ids: list[int]) -> str:
    """Generated ids decoded as kvpress's pipeline decodes them (the tokenizer's default, which
    for SmolLM2 cleans up spaces before punctuation); kvfleet's own replies never clean up
    (deployments.engine.detokenizer), so the ids are compared through kvpress's decode."""
    return engine.tokenizer.decode(question_ids, skip_special_tokens=True)


def answers(engine, ckv, questions: list[str], max_tokens: int) -> list[str]:
    return [kvpress_text(engine, engine.answer(ckv, q, SamplingParams(max_tokens=max_tokens))[1]) for q in questions]


QUESTIONS = ["What is the secret code of the vault?", "Where was Alice born?", "When is the meeting?"]

SPECS = [
    {"name": "none"},
    {"name": "knorm", "compression_ratio": 0.5},
    {"name": "snapkv", "compression_ratio": 0.5},
    {"name": "streaming_llm", "compression_ratio": 0.5},
    {"name": "expected_attention", "compression_ratio": 0.5},
    {"name": "tova", "compression_ratio": 0.5},
    {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "snapkv"}]},  # per-head, stored ragged
    {"name": "composed", "presses": [{"name": "knorm", "compression_ratio": 0.3},
                                     {"name": "streaming_llm", "compression_ratio": 0.3}]},
]


BF16_SPECS = ("none", "knorm")  # bfloat16 runs a dense press and a scorer: the parity is about the engine's
# prefill / cache layout / decode path; every press answers in bfloat16 in test_every_press.py. The per-head
# (ragged) layout is token-identical in float32 only: in bfloat16 kvpress's pipeline attends over fake keys where
# kvfleet masks, a different summation that flipped one near-tied greedy token at the 40th token of 3 answers
# (measured: "October 22" vs "October 15"), the same class of 1-ulp difference as docs/dtype.md describes.
CASES = [(dtype, spec) for dtype in DTYPES for spec in SPECS if dtype == "float32" or spec["name"] in BF16_SPECS]


@pytest.mark.parametrize("dtype, spec", CASES, indirect=["dtype"], ids=[f"{d}-{s['name']}" for d, s in CASES])
def test_greedy_answers_token_identical_to_pipeline(engine, kvpress_pipeline, spec):
    context = document(40)
    press_spec = PressSpec.model_validate(spec)
    ckv = engine.prefill(context, press_spec)
    ours = answers(engine, ckv, QUESTIONS, 24)
    reference = kvpress_pipeline(context, questions=QUESTIONS, press=resolve(press_spec).press,
                                 max_new_tokens=24)["answers"]
    assert ours == reference


def test_per_head_press_is_stored_ragged_and_really_smaller(engine):
    context = document(40)
    full = engine.prefill(context, PressSpec())
    ada = engine.prefill(context, PressSpec.model_validate(
        {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "snapkv"}]}))
    assert ada.is_ragged
    heads = ada.layers[0].head_lengths
    assert heads is not None and len(set(heads)) > 1 or any(len(set(l.head_lengths or ())) > 1 for l in ada.layers)
    assert abs(ada.nbytes / full.nbytes - 0.5) < 0.02


@pytest.mark.slow
def test_kvzip_token_identical_to_pipeline(engine, kvpress_pipeline):
    context = document(20)
    spec = PressSpec(name="kvzip", compression_ratio=0.5)
    ckv = engine.prefill(context, spec)
    ours = answers(engine, ckv, QUESTIONS[:2], 16)
    reference = kvpress_pipeline(context, questions=QUESTIONS[:2], press=resolve(spec).press,
                                 max_new_tokens=16)["answers"]
    assert ours == reference


def test_decoding_press_matches_pipeline(engine, kvpress_pipeline):
    context = document(10)
    spec = PressSpec.model_validate({"name": "decoding", "presses": [{"name": "knorm"}],
                                     "compression_interval": 4, "target_size": 96})
    ckv = engine.prefill(context, spec)
    assert ckv.meta.kept_tokens == ckv.meta.original_tokens  # decoding presses leave the prefill alone
    ours = answers(engine, ckv, QUESTIONS[:1], 24)[0]
    reference = kvpress_pipeline(context, question=QUESTIONS[0], press=resolve(spec).press,
                                 max_new_tokens=24)["answer"]
    assert ours == reference
