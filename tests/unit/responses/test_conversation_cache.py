"""A conversation kept as a cache: rendering a turn after a stored one, and appending tokens to a
stored (possibly compressed) cache - with the real embedded model, no server."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.extend import extend_cache
from deployments.engine.prompt import PromptError
from deployments.engine.sampling import SamplingParams
from deployments.ingress.responses.conversation import ConversationRenderer
from kvpool.press_spec import PressSpec
from tests.conftest import document

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def conversations(engine):
    return ConversationRenderer(engine.renderer)


def test_closing_ids_end_an_assistant_turn(engine, conversations):
    assert engine.tokenizer.decode(conversations.closing_ids) == "<|im_end|>\n"


def test_turn_after_turn_covers_exactly_the_rendered_conversation(engine, conversations):
    first = conversations.first_turn([{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Name a fruit."}])
    cache = engine.prefill(first.input_ids[:-1])
    text, tokens, _ = engine.answer(cache, first.input_ids[-1:], GREEDY)
    answer = [t for t in tokens if t not in engine.eos_ids]
    stored = extend_cache(engine, cache, first.input_ids[-1:] + answer + conversations.closing_ids)
    conversation = [*first.conversation, {"role": "assistant", "content": text}]
    assert list(stored.meta.token_ids) == engine.renderer.encode(engine.renderer.render(conversation, False))
    second = conversations.after_response(conversation, [{"role": "user", "content": "Another one."}])
    whole = conversations.first_turn([*conversation, {"role": "user", "content": "Another one."}])
    assert list(stored.meta.token_ids) + second.input_ids == whole.input_ids  # only the new turn is fed
    assert second.conversation == whole.conversation
    # continuing on the stored cache answers as a re-read of the whole conversation does
    reread = engine.prefill(whole.input_ids[:-1])
    assert engine.answer(stored, second.input_ids, GREEDY)[0] == engine.answer(reread, whole.input_ids[-1:], GREEDY)[0]


def test_extend_equals_prefill_of_the_whole(engine):
    ids = engine.renderer.encode("The quick brown fox jumps over the lazy dog. " * 6)
    joined = extend_cache(engine, engine.prefill(ids[:30]), ids[30:])
    whole = engine.prefill(ids)
    assert joined.meta.original_tokens == whole.meta.original_tokens == len(ids)
    assert joined.meta.next_position == len(ids) and joined.meta.token_ids == tuple(ids)
    for a, b in zip(joined.layers, whole.layers):
        assert torch.allclose(a.keys, b.keys, atol=1e-3) and torch.allclose(a.values, b.values, atol=1e-3)


@pytest.mark.parametrize("press", [{"name": "knorm", "compression_ratio": 0.5},
                                   {"name": "adakv", "presses": [{"name": "knorm", "compression_ratio": 0.5}]}])
def test_extend_a_compressed_cache_keeps_its_pruning_and_the_new_tokens_whole(engine, press):
    ids = engine.renderer.encode(document(12))
    pressed = engine.prefill(ids[:-20], PressSpec.model_validate({**press, "min_tokens": 1}))
    joined = extend_cache(engine, pressed, ids[-20:])
    assert joined.meta.kept_tokens == pytest.approx(pressed.meta.kept_tokens + 20)
    assert joined.meta.original_tokens == len(ids) and joined.is_ragged == pressed.is_ragged
    assert engine.answer(joined, [engine.tokenizer.eos_token_id], GREEDY)[2] in ("stop", "length")


def test_a_document_session_start_puts_the_document_in_the_first_user_message(engine, conversations):
    turn = conversations.after_session({"text": "DOC. "}, [{"role": "user", "content": "Q?"}])
    frame = engine.renderer.document_frame("DOC. ")
    # kvpress's layout: the question is tokenized apart from the stored document (as on a session)
    assert engine.tokenizer.decode(engine.renderer.encode(frame.prefix_text) + turn.input_ids) == \
        engine.renderer.render(turn.conversation, add_generation_prompt=True)
    assert turn.conversation == [{"role": "user", "content": "DOC. Q?"}]
    with pytest.raises(PromptError):
        conversations.after_session({"text": "DOC. "}, [{"role": "system", "content": "new"},
                                                        {"role": "user", "content": "Q?"}])
