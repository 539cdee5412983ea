"""The embedded model's real tokenizer (no model weights) and token pools for property tests."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def embedded_tokenizer():
    from transformers import AutoTokenizer

    from deployments.engine.model_loader import prepare_embedded_model

    path, _ = prepare_embedded_model(progress=False)
    return AutoTokenizer.from_pretrained(path)


# Texts whose tokens exercise what clean-up and per-token decoding get wrong: spaces before
# punctuation and quotes, contractions, multi-byte characters split across tokens.
TRICKY_TEXTS = (
    "He said ' hello ' to me . It 's fine , is n't it ?",
    'a " quoted " word ; x : y ! z ? ( p ) [ q ] { r }',
    " do n't , ca n't , I 'm , we 're , they 've , you 'll , he 'd",
    "你好，世界。日本語のテキスト 한국어 텍스트",
    "emoji 😀🎉👍🏽 and flags 🇵🇹 and math ∑∫√ and accents café naïve",
    "tabs\tand\nnew lines\r\n  double  spaces  . ,",
)


@lru_cache(maxsize=1)
def tricky_ids() -> tuple[int, ...]:
    tok = embedded_tokenizer()
    ids: set[int] = set()
    for text in TRICKY_TEXTS:
        ids.update(tok.encode(text, add_special_tokens=False))
    return tuple(sorted(ids))
