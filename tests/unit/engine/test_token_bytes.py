"""Issue 14 item 2: a logprob entry's ``bytes`` are the token's own bytes, so joining them rebuilds
the reply exactly, also for tokens that hold part of a character (emoji, CJK)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.engine.detokenizer import decode_text
from deployments.engine.token_bytes import TokenBytes, special_token_ids
from tests.unit.engine.tokenizer_fixtures import TRICKY_TEXTS, embedded_tokenizer, tricky_ids


@pytest.fixture(scope="module")
def tok():
    return embedded_tokenizer()


@pytest.fixture(scope="module")
def token_bytes(tok):
    return TokenBytes(tok)


def joined(token_bytes: TokenBytes, ids: list[int]) -> bytes:
    return b"".join(token_bytes.entry(i)[1] or b"" for i in ids)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_joined_bytes_rebuild_the_text(tok, token_bytes, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert joined(token_bytes, ids) == text.encode("utf-8")


def test_a_split_emoji_reports_its_own_bytes(tok, token_bytes):
    ids = tok.encode("😀", add_special_tokens=False)
    assert len(ids) > 1  # the emoji's 4 bytes are split across tokens
    pieces = [token_bytes.entry(i)[1] for i in ids]
    assert b"".join(pieces) == "😀".encode("utf-8") == b"\xf0\x9f\x98\x80"
    assert all(p != "\ufffd".encode("utf-8") for p in pieces)  # the old bug: U+FFFD's bytes
    first = token_bytes.logprob_entry(ids[0], -0.5)
    assert first == {"token": pieces[0].decode("utf-8", "replace"), "logprob": -0.5, "bytes": list(pieces[0])}


def test_special_tokens_have_no_bytes(tok, token_bytes):
    text, raw = token_bytes.entry(tok.convert_tokens_to_ids("<|im_end|>"))
    assert text == "<|im_end|>" and raw is None


def test_spaces_before_punctuation_keep_their_space(tok, token_bytes):
    ids = tok.encode("is n't it ?", add_special_tokens=False)
    texts = [token_bytes.entry(i)[0] for i in ids]
    assert "".join(texts) == "is n't it ?"


def test_random_sequences_rebuild_exactly(tok, token_bytes):
    special = sorted(special_token_ids(tok))
    vocab = len(tok)
    one = st.one_of(st.sampled_from(tricky_ids()), st.integers(0, vocab - 1), st.sampled_from(special))

    @settings(max_examples=2000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(one, max_size=24))
    def prop(ids):
        raw = joined(token_bytes, ids)
        assert raw.decode("utf-8", errors="replace") == decode_text(tok, ids)

    prop()
