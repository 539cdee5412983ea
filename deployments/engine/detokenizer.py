"""Incremental detokenization with stop strings, safe for streaming.

The contract (vLLM's, and what newer transformers default to): the text of a reply is exactly
``tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)`` of its
generated ids, cut before the first stop string. Byte-level BPE is lossless, so nothing may be
"cleaned up": ``clean_up_tokenization_spaces`` (on in SmolLM2's tokenizer config) rewrites
``" ."``, ``" 's"``, ``" n't"``... and, applied to a growing text, shifts characters that were
already streamed, which lost characters from replies (issue 14).

Streaming never shows text the final reply would not contain: a trailing U+FFFD (an incomplete
UTF-8 sequence whose next bytes may still arrive) and a suffix that could still grow into a stop
string are held back until decided. ``flush`` releases what is held at the end, so the
concatenated deltas always equal the final text. Before ``min_tokens`` generated tokens (vLLM's
``min_tokens``) stop strings are not looked for.
"""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"


def decode_text(tokenizer: Any, ids: list[int]) -> str:
    """The exact text of ``ids``: special tokens skipped, no clean-up of spaces."""
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _held_stop_prefix(text: str, stop: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``stop`` (0 if none)."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0


class StreamingDetokenizer:
    """Turns generated token ids into text deltas.

    ``push(id) -> str`` returns the newly decided text ('' while held back or after a stop);
    ``flush() -> str`` returns what was held back once generation ends. ``stopped_by`` is the stop
    string that ended the reply (the reply is cut before its first occurrence), else None.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = (), min_tokens: int = 0):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.min_tokens = min_tokens
        self.token_ids: list[int] = []
        self.emitted = 0  # characters of the final text already returned
        self.stopped_by: str | None = None

    def _full_text(self) -> str:
        return decode_text(self.tokenizer, self.token_ids)

    def _active_stops(self) -> tuple[str, ...]:
        return self.stop if len(self.token_ids) >= self.min_tokens else ()

    def _first_stop(self, text: str) -> tuple[int, str] | None:
        """(position, stop) of the earliest stop string in ``text``; None when none occurs."""
        best: tuple[int, str] | None = None
        for stop in self._active_stops():
            at = text.find(stop, max(0, self.emitted - len(stop) + 1))
            if at != -1 and (best is None or at < best[0]):
                best = (at, stop)
        return best

    def push(self, token_id: int) -> str:
        """Add a generated token; return the newly decided text."""
        if self.stopped_by is not None:
            return ""
        self.token_ids.append(token_id)
        text = self._full_text()
        stable = text.rstrip(_REPLACEMENT)  # the trailing U+FFFD may still become a character
        hit = self._first_stop(stable)
        if hit is not None:
            at, self.stopped_by = hit
            delta = stable[self.emitted:at]
            self.emitted = max(self.emitted, at)
            return delta
        safe = len(stable) - max((_held_stop_prefix(stable, s) for s in self._active_stops()), default=0)
        delta = stable[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return delta

    def flush(self) -> str:
        """At the end of generation: the held-back rest (nothing after a stop string)."""
        if self.stopped_by is not None:
            return ""
        text = self._full_text()
        delta = text[self.emitted:]
        self.emitted = len(text)
        return delta
