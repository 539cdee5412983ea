"""PressSpec: the serialisable description of a kvpress press.

A spec is pure data; the engine's press registry (deployments/engine/presses/) turns it into a
kvpress press object. Keeping the spec here lets the pool, the prefix index, the transfer
manifest and the control plane's session records name a press without importing kvpress.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_FIELDS = {"name", "compression_ratio", "target_tokens", "kwargs", "presses", "min_tokens"}


class PressSpec(BaseModel):
    """`{name, compression_ratio, ...kwargs, presses: [...]}`.

    - ``name``: a registry name (``knorm``, ``snapkv``, ``adakv`` ...), ``none`` for no
      compression, or a custom press as ``package.module:ClassName``.
    - ``compression_ratio``: fraction of KV pairs to drop, in [0, 1).
    - ``kwargs``: extra constructor arguments of the press; unknown top-level keys are moved
      here, so ``{"name": "streaming_llm", "n_sink": 8}`` is accepted.
    - ``presses``: inner presses of wrappers (composed, per_layer, adakv, decoding ...).
    - ``target_tokens``: a token budget instead of a ratio: keep at most this many tokens per
      head on average; the ratio is ``1 - target_tokens / context_tokens`` for each context
      (0 when the context is shorter). For decoding presses it is the cache size kept while
      generating (kvpress ``target_size``). Give either ``compression_ratio`` or this.
    - ``min_tokens``: contexts shorter than this are stored uncompressed (a threshold below
      which nothing is pruned, with a ratio or a budget alike).

    Validation of the name and kwargs against kvpress happens in the registry, which raises
    ``PressSpecError`` listing the valid choices.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "none"
    compression_ratio: float = 0.0
    target_tokens: int | None = Field(default=None, ge=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    presses: tuple["PressSpec", ...] = ()
    min_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _collect_kwargs(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if not isinstance(data, dict):
            return data
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        if not extra:
            return data
        merged = {k: v for k, v in data.items() if k in _FIELDS}
        merged["kwargs"] = {**extra, **dict(data.get("kwargs") or {})}
        return merged

    @field_validator("compression_ratio")
    @classmethod
    def _ratio_in_range(cls, ratio: float) -> float:
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"compression_ratio must be in [0, 1), got {ratio}")
        return ratio

    @model_validator(mode="after")
    def _ratio_or_budget(self) -> "PressSpec":
        if self.target_tokens is not None and self.compression_ratio:
            raise ValueError("give either compression_ratio (a fraction to drop) or target_tokens "
                             f"(tokens to keep per head), not both (got {self.compression_ratio} and "
                             f"{self.target_tokens})")
        return self

    @field_validator("name")
    @classmethod
    def _name_normalised(cls, name: str) -> str:
        name = name.strip()
        if not name:
            raise ValueError("press name must not be empty")
        return name if ":" in name else name.lower()

    def canonical_json(self) -> str:
        """Stable JSON: equal specs give equal strings (used in content addresses)."""
        # exclude_none: a spec without a token budget keeps the address it had before budgets existed
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """Short stable hash of the spec, for content addresses and logs."""
        return hashlib.blake2b(self.canonical_json().encode(), digest_size=8).hexdigest()

    @property
    def compresses(self) -> bool:
        """False when this spec keeps every token (``none`` or ratio 0 without wrappers)."""
        return self.name != "none" and (self.compression_ratio > 0 or self.target_tokens is not None
                                        or bool(self.presses) or bool(self.kwargs))


NO_PRESS = PressSpec()
