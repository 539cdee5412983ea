"""BatchConfig: the limits of a replica's continuously batched decode (composed into AppConfig)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
