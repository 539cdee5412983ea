"""The ingress's context-length check does bounded work for any input (issue 19): a context far
over the limit is refused from its character count alone, a long one by tokenizing a prefix only;
a context under the limit is counted exactly. The real tokenizer of the embedded model."""

from __future__ import annotations

import pytest

from deployments.ingress.guards.context_limit import PREFIX_CHARS_PER_TOKEN, ContextLimit
from deployments.engine.engine import ContextTooLongError
from deployments.engine.model_loader import ModelConfig
from tests.conftest import document

LIMIT = 2000


@pytest.fixture(scope="module")
def limit() -> ContextLimit:
    return ContextLimit(ModelConfig(), LIMIT)


@pytest.fixture
def encoded(limit: ContextLimit, monkeypatch) -> list[int]:
    """Lengths (characters) of every text the check tokenizes."""
    seen: list[int] = []
    encode = limit.renderer.encode
    monkeypatch.setattr(limit.renderer, "encode", lambda text: seen.append(len(text)) or encode(text))
    return seen


def test_the_character_bound_is_a_true_bound(limit: ContextLimit):
    vocab = limit.renderer.tokenizer.get_vocab()
    assert limit.max_chars_per_token == max(len(t) for t in vocab)
    text = document(200)
    assert len(limit.renderer.tokenizer.encode(text, add_special_tokens=False)) >= len(text) / limit.max_chars_per_token


def test_a_huge_context_is_refused_without_tokenizing(limit: ContextLimit, encoded: list[int]):
    huge = "a" * (5 << 20)  # 5 MB: the 30 MB case minus what the body limit already stops
    with pytest.raises(ContextTooLongError, match="characters, so more than 2000 tokens"):
        limit.check(huge)
    with pytest.raises(ContextTooLongError, match="characters"):
        limit.check([{"role": "user", "content": huge}])
    with pytest.raises(ContextTooLongError, match="characters"):
        limit.check([{"role": "user", "content": [{"type": "text", "text": huge}]}])
    assert encoded == []


def test_a_long_context_is_refused_from_a_prefix(limit: ContextLimit, encoded: list[int]):
    text = document(1000)  # ~17k tokens, under the character bound
    assert len(text) <= (LIMIT + 1) * limit.max_chars_per_token
    with pytest.raises(ContextTooLongError, match="more than"):
        limit.check(text)
    assert encoded and max(encoded) <= PREFIX_CHARS_PER_TOKEN * (LIMIT + 1)


def test_contexts_under_the_limit_are_counted_exactly(limit: ContextLimit):
    for context in (document(20), [{"role": "user", "content": document(20)}], "hello"):
        assert limit.check(context) == limit.count(context) <= LIMIT
    text = document(115)  # just under 2000 tokens
    assert limit.check(text) == limit.count(text)
