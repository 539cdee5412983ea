"""The embedded model's real tokenizer (no model weights) and token pools for property tests."""

from __future__ import annotations

from functools import lru_cache

from tests.regression.exact_text_corpus import TRICKY_TEXTS


@lru_cache(maxsize=1)
def embedded_tokenizer():
    from transformers import AutoTokenizer

    from deployments.engine.model_loader import prepare_embedded_model

    path, _ = prepare_embedded_model(progress=False)
    return AutoTokenizer.from_pretrained(path)


@lru_cache(maxsize=1)
def tricky_ids() -> tuple[int, ...]:
    tok = embedded_tokenizer()
    ids: set[int] = set()
    for text in TRICKY_TEXTS:
        ids.update(tok.encode(text, add_special_tokens=False))
    return tuple(sorted(ids))
