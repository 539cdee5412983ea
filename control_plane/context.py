"""SessionContext: what a session was built from, kept durably so it can be re-prefilled."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SessionContext(BaseModel):
    """Exactly one of ``token_ids``, ``text`` or ``messages`` (chat messages as OpenAI dicts).

    Token ids are preferred: re-prefilling them reproduces the cache exactly, without depending on
    the tokenizer or chat template version.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_ids: tuple[int, ...] | None = None
    text: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    uncompressed_from: int | None = Field(
        default=None, ge=0, description="a conversation chain (a stored response): token_ids[:n] are prefilled "
                                        "under the press, the rest kept whole; only with token_ids")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SessionContext":
        given = [name for name in ("token_ids", "text", "messages") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a session context needs exactly one of token_ids, text or messages; "
                f"got {', '.join(given) or 'none'}"
            )
        if self.uncompressed_from is not None and (self.token_ids is None or self.uncompressed_from > len(self.token_ids)):
            raise ValueError("uncompressed_from needs token_ids and must be at most their count")
        return self

    def prefill_input(self) -> Any:
        """What ``Replica.load_session`` re-prefills: a chain dict, token ids, messages or text."""
        if self.uncompressed_from is not None:
            return {"token_ids": list(self.token_ids or ()), "uncompressed_from": self.uncompressed_from}
        if self.token_ids is not None:
            return list(self.token_ids)
        return [dict(m) for m in self.messages] if self.messages is not None else self.text

    def canonical_json(self) -> str:
        """Stable JSON of the one field that is set (equal contexts give equal strings)."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))

    def digest(self, model: str) -> str:
        """Content hash of ``model`` + this context (hex, 16 chars); used for affinity placement."""
        payload = f"{model}\n{self.canonical_json()}".encode()
        return hashlib.blake2b(payload, digest_size=8).hexdigest()
