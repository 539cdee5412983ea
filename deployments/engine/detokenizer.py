"""Incremental detokenization with stop strings, safe for streaming.

Text that could still turn into a stop string (or an incomplete UTF-8 sequence) is held back
until it is decided, so a streamed reply never shows text the final reply would not contain.
Before ``min_tokens`` tokens (vLLM ``min_tokens``) stop strings are not looked for.
"""

from __future__ import annotations

from typing import Any


class StreamingDetokenizer:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = (), min_tokens: int = 0):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.min_tokens = min_tokens
        self.token_ids: list[int] = []
        self.emitted = 0  # characters of the final text already returned
        self.stopped_by: str | None = None

    def _full_text(self) -> str:
        return self.tokenizer.decode(self.token_ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add a token; return newly decided text ('' when held back or after a stop)."""
        if self.stopped_by is not None:
            return ""
        self.token_ids.append(token_id)
        text = self._full_text()
        stops = self.stop if len(self.token_ids) >= self.min_tokens else ()
        for stop in stops:
            at = text.find(stop, max(0, self.emitted - len(stop)))
            if at != -1:
                self.stopped_by = stop
                delta = text[self.emitted:at] if at > self.emitted else ""
                self.emitted = max(self.emitted, at)
                return delta
        safe = len(text)
        if text.endswith("\ufffd"):
            safe = len(text.rstrip("\ufffd"))
        for stop in stops:  # hold back a suffix that is a prefix of a stop string
            for k in range(min(len(stop) - 1, safe), 0, -1):
                if text[safe - k:safe] == stop[:k]:
                    safe -= k
                    break
        delta = text[self.emitted:safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return delta

    def flush(self) -> str:
        """At the end of generation: return whatever was held back (unless a stop string hit)."""
        if self.stopped_by is not None:
            return ""
        text = self._full_text().rstrip("\ufffd")
        delta = text[self.emitted:]
        self.emitted = len(text)
        return delta
