"""A generated token's own bytes and text, for OpenAI ``logprobs`` entries.

OpenAI's logprob entry has ``token`` (text) and ``bytes`` (the token's UTF-8 bytes, "useful when
characters are represented by multiple tokens ... can be null if there is no bytes representation
for the token"), so that joining every entry's ``bytes`` rebuilds the reply exactly. Decoding one
token on its own gives U+FFFD for a token holding part of a character, whose bytes would be wrong
(issue 14); the bytes come from the vocabulary instead:

- byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen): the token string is a byte-level alphabet
  string; map each character back through the inverse of ``bytes_to_unicode``;
- SentencePiece byte fallback tokens ``<0xHH>``: that one byte;
- anything else: the UTF-8 of the token decoded on its own;
- special tokens (skipped from the reply text): ``bytes`` is None, ``token`` is their literal form.

``token`` is the bytes decoded with ``errors="replace"`` (a partial character shows as U+FFFD,
as vLLM reports it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from deployments.engine.detokenizer import decode_text


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet (openai/gpt-2 ``encoder.py``, used by every byte-level BPE
    tokenizer): printable bytes map to themselves, the other 68 to U+0100 onwards."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_BYTE_DECODER = {char: byte for byte, char in bytes_to_unicode().items()}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and '"ByteLevel"' in backend.decoder.__getstate__().decode("utf-8", "replace")


def special_token_ids(tokenizer: Any) -> frozenset[int]:
    """Ids that ``decode(..., skip_special_tokens=True)`` skips: the named special tokens and every
    added token flagged special (``all_special_ids`` alone misses e.g. SmolLM2's ``<|im_end|>``)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    flagged = {i for i, token in added.items() if getattr(token, "special", False)}
    return frozenset(flagged | set(getattr(tokenizer, "all_special_ids", ()) or ()))


class TokenBytes:
    """``token_id -> (text, bytes | None)`` for one tokenizer, cached per id."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.byte_level = _is_byte_level(tokenizer)
        self.special_ids = special_token_ids(tokenizer)
        self.entry = lru_cache(maxsize=65536)(self._entry)

    def _entry(self, token_id: int) -> tuple[str, bytes | None]:
        piece = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if token_id in self.special_ids:
            return str(piece), None
        raw = self.raw_bytes(token_id, piece)
        return raw.decode("utf-8", errors="replace"), raw

    def raw_bytes(self, token_id: int, piece: str | None) -> bytes:
        """The token's bytes as the reply's byte stream holds them."""
        if piece is not None and self.byte_level and all(c in _BYTE_DECODER for c in piece):
            return bytes(_BYTE_DECODER[c] for c in piece)
        match = _BYTE_FALLBACK.match(piece or "")
        if match:
            return bytes([int(match.group(1), 16)])
        return decode_text(self.tokenizer, [token_id]).encode("utf-8")

    def logprob_entry(self, token_id: int, logprob: float) -> dict:
        """``{"token", "logprob", "bytes"}`` as in OpenAI's ``ChatCompletionTokenLogprob``."""
        text, raw = self.entry(token_id)
        return {"token": text, "logprob": logprob, "bytes": None if raw is None else list(raw)}
