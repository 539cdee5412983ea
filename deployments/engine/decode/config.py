"""BatchConfig: the limits of a replica's continuously batched decode (composed into AppConfig)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)


class BatchConfig(BaseModel):
    """Bounds of one decode step (vLLM's ``max_num_seqs`` / ``max_num_batched_tokens``).

    - ``max_batch_size``: rows (generations) decoded by one forward; more wait FIFO.
    - ``max_batched_tokens``: tokens fed in one step (1 per running row + each joiner's question).
      A request alone in an empty step is always admitted, however long its question.
    - ``max_kv_tokens``: KV columns the running rows' caches may hold together (in token
      positions, summed over rows: each row keeps buffers of its own, no padding); bounds the
      memory many long caches can take.
    - ``enabled``: False decodes one request per forward (the pre-batching path), e.g. to compare.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_batch_size: int = Field(default=16, ge=1)
    max_batched_tokens: int = Field(default=4096, ge=1)
    max_kv_tokens: int = Field(default=262_144, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Keys of the padded layout (before rows kept buffers of their own): ``max_padded_tokens``
        is read as ``max_kv_tokens``; ``row_padding`` has no meaning any more (no row is padded)."""
        if not isinstance(data, dict) or not {"max_padded_tokens", "row_padding"} & data.keys():
            return data
        data = dict(data)
        if "max_padded_tokens" in data:
            if "max_kv_tokens" in data:
                raise ValueError("max_padded_tokens is the old name of max_kv_tokens: give only max_kv_tokens")
            log.warning("batching.max_padded_tokens is deprecated: read as max_kv_tokens")
            data["max_kv_tokens"] = data.pop("max_padded_tokens")
        if "row_padding" in data:
            log.warning("batching.row_padding is deprecated and ignored: rows keep KV buffers of their own")
            data.pop("row_padding")
        return data
