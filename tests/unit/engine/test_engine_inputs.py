"""Prompts, sampling and input errors of the engine (real model)."""

import pytest

from deployments.engine.engine import ContextTooLongError
from deployments.engine.presses import install_press_policy, resolve
from deployments.engine.prompt import PromptError
from deployments.engine.sampling import SamplingParams
from kvpool import PressSpec, PressSpecError
from tests.conftest import document

GREEDY = SamplingParams(max_tokens=16)


def test_chat_session_answer_equals_prefilling_whole_conversation(engine):
    history = [{"role": "system", "content": "You answer in one short sentence."},
               {"role": "user", "content": "My dog is called Biscuit and he is three years old."},
               {"role": "assistant", "content": "Biscuit sounds lovely!"}]
    question = [{"role": "user", "content": "What is my dog called?"}]
    session = engine.prefill(history, PressSpec())
    full = engine.renderer.render(history + question, add_generation_prompt=True)
    baseline = engine.prefill(engine.renderer.encode(full)[:-1], PressSpec())
    last = engine.renderer.encode(full)[-1:]
    expected = "".join(s.text for s in engine.generate_ids(baseline, last, GREEDY))
    assert engine.answer(session, question, GREEDY)[0] == expected


def test_document_session_rejects_a_new_system_prompt(engine):
    ckv = engine.prefill(document(2), PressSpec())
    with pytest.raises(PromptError, match="system"):
        engine.answer(ckv, [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}])


def test_seeded_sampling_is_reproducible_and_differs_from_greedy(engine):
    ckv = engine.prefill(document(5), PressSpec())
    hot = SamplingParams(max_tokens=24, temperature=1.5, top_p=0.95, seed=7)
    first, second = engine.answer(ckv, "Tell me a story.", hot), engine.answer(ckv, "Tell me a story.", hot)
    assert first == second
    other = engine.answer(ckv, "Tell me a story.", hot.model_copy(update={"seed": 8}))
    assert other[1] != first[1]


def test_stop_strings_and_length_finish(engine):
    ckv = engine.prefill(document(10), PressSpec())
    text, tokens, finish = engine.answer(ckv, "What is the secret code of the vault?", GREEDY)
    assert "7341" in text
    cut, _, finish_cut = engine.answer(ckv, "What is the secret code of the vault?",
                                       GREEDY.model_copy(update={"stop": ("7341",)}))
    assert finish_cut == "stop" and cut == text[: text.index("7341")]
    short, short_tokens, finish_short = engine.answer(ckv, "What is the secret code of the vault?",
                                                      SamplingParams(max_tokens=3))
    assert finish_short == "length" and len(short_tokens) == 3 and text.startswith(short)


def test_logprobs_are_reported(engine):
    ckv = engine.prefill(document(2), PressSpec())
    steps = [s for s in engine.generate(ckv, "Hi", SamplingParams(max_tokens=3, logprobs=True, top_logprobs=3))
             if s.token]
    for step in steps:
        assert step.token.logprob <= 0 and len(step.token.top_logprobs) == 3
        assert step.token.top_logprobs[0][1] >= step.token.logprob  # greedy picks the top token


@pytest.mark.parametrize("spec, message", [
    ({"name": "nope"}, "valid presses: none, adakv"),
    ({"name": "knorm", "compression_ratio": 0.5, "window": 3}, "no argument"),
    ({"name": "adakv", "compression_ratio": 0.5}, "wraps inner presses"),
    ({"name": "composed", "compression_ratio": 0.5, "presses": [{"name": "knorm"}]}, "takes no compression_ratio"),
    ({"name": "streaming_llm", "presses": [{"name": "knorm"}]}, "does not wrap"),
    ({"name": "nosuchmodule.x:Press"}, "not allowlisted"),
    ({"name": "collections:OrderedDict"}, "not allowlisted"),
])
def test_bad_press_specs_raise_typed_errors(spec, message):
    with pytest.raises(PressSpecError, match=message):
        resolve(PressSpec.model_validate(spec))


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 2])
def test_bad_ratio_is_rejected_by_the_spec(ratio):
    with pytest.raises(ValueError, match="compression_ratio"):
        PressSpec(name="knorm", compression_ratio=ratio)


def test_min_tokens_keeps_short_contexts_uncompressed(engine):
    ckv = engine.prefill(document(2), PressSpec(name="knorm", compression_ratio=0.5, min_tokens=10_000))
    assert ckv.meta.kept_tokens == ckv.meta.original_tokens


def test_custom_press_by_import_path(engine):
    install_press_policy({"custom_allowlist": ["kvpress:KnormPress"]})  # the operator allowlists it
    try:
        ckv = engine.prefill(document(4), PressSpec(name="kvpress:KnormPress", compression_ratio=0.5))
    finally:
        install_press_policy(None)
    assert ckv.meta.kept_tokens == ckv.meta.original_tokens // 2 + ckv.meta.original_tokens % 2 or \
        abs(ckv.meta.kept_tokens - ckv.meta.original_tokens / 2) <= 1


def test_too_long_context_and_question_are_rejected(engine):
    with pytest.raises(ContextTooLongError, match="at most"):
        engine.prefill(list(range(10, 10 + engine.max_positions)), PressSpec())
    ckv = engine.prefill(document(1), PressSpec())
    with pytest.raises(ContextTooLongError, match="max_tokens"):
        engine.answer(ckv, "hi", SamplingParams(max_tokens=engine.max_positions))


def test_text_spelling_a_token_the_model_cannot_read_is_a_prompt_error(engine):
    """The embedded GGUF's tokenizer defines 5 tokens above the model's 49,152 embedding rows
    (``<FILL_ME>`` = 49156): text that spells one must be a 400, never reach the forward pass."""
    assert len(engine.tokenizer) > engine.vocab_size
    text = "Fill this in: <FILL_ME> please."
    assert max(engine.tokenizer.encode(text)) >= engine.vocab_size
    with pytest.raises(PromptError, match="FILL_ME"):
        engine.prefill(text, PressSpec())
    ckv = engine.prefill(document(1), PressSpec())
    with pytest.raises(PromptError, match="49156"):
        engine.answer(ckv, text, GREEDY)
    with pytest.raises(PromptError, match="cannot read"):
        engine.prompt_logprobs(None, [1, engine.vocab_size])
    assert engine.answer(ckv, "What is this about?", GREEDY)[0]  # the engine still answers
