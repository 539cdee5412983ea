"""Texts whose exact reply text broke (issue 14 item 1, item 2): what clean-up of spaces and
per-token decoding got wrong. Each must round-trip exactly through tokenize -> stream-detokenize,
and its tokens' logprob ``bytes`` must join to its UTF-8."""

from __future__ import annotations

TRICKY_TEXTS = (
    "He said ' hello ' to me . It 's fine , is n't it ?",
    'a " quoted " word ; x : y ! z ? ( p ) [ q ] { r }',
    " do n't , ca n't , I 'm , we 're , they 've , you 'll , he 'd",
    "你好，世界。日本語のテキスト 한국어 텍스트",
    "emoji 😀🎉👍🏽 and flags 🇵🇹 and math ∑∫√ and accents café naïve",
    "tabs\tand\nnew lines\r\n  double  spaces  . ,",
)
