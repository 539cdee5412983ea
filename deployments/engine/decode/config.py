"""BatchConfig: the limits of a replica's continuously batched decode (composed into AppConfig)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BatchConfig(BaseModel):
    """Bounds of one decode step (vLLM's ``max_num_seqs`` / ``max_num_batched_tokens``).

    - ``max_batch_size``: rows (generations) decoded by one forward; more wait FIFO.
    - ``max_batched_tokens``: tokens fed in one step (1 per running row + each joiner's question).
      A request alone in an empty step is always admitted, however long its question.
    - ``max_padded_tokens``: the padded working set, rows x longest row (in token positions);
      bounds the memory a mix of one long and many short caches can take.
    - ``enabled``: False decodes one request per forward (the pre-batching path), e.g. to compare.
    - ``row_padding``: how rows' padding columns are hidden: ``masked_keys`` (default: kvpress's
      fake keys, as per-head padding already is; no attention mask, so SDPA keeps its GQA path -
      about 2x faster steps measured on CPU) or ``attention_mask`` (an attention mask; transformers
      then repeats the KV heads, a copy of the whole batch cache per layer and step).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_batch_size: int = Field(default=16, ge=1)
    max_batched_tokens: int = Field(default=4096, ge=1)
    max_padded_tokens: int = Field(default=262_144, ge=1)
    row_padding: Literal["attention_mask", "masked_keys"] = "masked_keys"
