"""What a target accepts: the receiver checks a manifest against this before any byte moves.

A cache pruned for one model is useless (and dangerous) on a replica serving another one, so a
target states the model id and cache layout it serves; a mismatch fails the ticket with
MANIFEST_MISMATCH and nothing lands. Fields left as None are not checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kvpool.compressed_kv import CompressedKV
from transfer.errors import TransferError
from transfer.states import FailureReason

_META_FIELDS = ("model_id", "num_layers", "num_kv_heads", "head_dim", "dtype", "codec")


class KVExpectation(BaseModel):
    """The model and layout a target serves, plus an optional size cap (``max_bytes``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: str | None = None
    num_layers: int | None = Field(default=None, gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    dtype: str | None = None
    codec: str | None = None
    max_bytes: int | None = Field(default=None, ge=0)

    @classmethod
    def like(cls, ckv: CompressedKV, **overrides: Any) -> "KVExpectation":
        """Expect caches with the model id and layout of ``ckv`` (handy in tests and benchmarks)."""
        meta = ckv.meta
        fields = {name: getattr(meta, name) for name in _META_FIELDS}
        return cls(**{**fields, **overrides})

    def check(self, manifest: dict[str, Any]) -> None:
        """Raise TransferError(MANIFEST_MISMATCH or CAPACITY) unless ``manifest`` fits this target."""
        meta = manifest.get("meta")
        if not isinstance(meta, dict):
            raise TransferError(FailureReason.MANIFEST_MISMATCH, "manifest has no 'meta' section; the source "
                                "did not send a kvpool.pack() manifest")
        wrong = [f"{name}: target serves {getattr(self, name)!r}, cache has {meta.get(name)!r}"
                 for name in _META_FIELDS if getattr(self, name) is not None and meta.get(name) != getattr(self, name)]
        if wrong:
            raise TransferError(FailureReason.MANIFEST_MISMATCH, "; ".join(wrong) +
                                ". Move the session to a replica serving the same model, or re-prefill it here.")
        nbytes = int(manifest.get("nbytes", 0))
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise TransferError(FailureReason.CAPACITY, f"cache is {nbytes} bytes, target accepts at most "
                                f"{self.max_bytes}; free room on the target or pick another one")
