"""Continuously batched decode (no Ray): one loop per replica steps every running generation.

Files, one idea each (design note: shared/design/batched-decode.md, written for the first, padded
layout; docs/batched-decode.md describes the ragged one):
``config`` BatchConfig; ``request`` lifecycle enum + the scheduler's per-request record;
``step`` plain data exchanged by scheduler and runner; ``budget`` admission arithmetic;
``scheduler`` decides (pure, no torch); ``row_kv`` a row's own KV buffers (the ragged batch
layout); ``packed`` one packed forward over rows of any length (per-row attention);
``runner`` runs one step on the model; ``loop`` the one thread that touches the model.
"""

from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.loop import DecodeLoop
from deployments.engine.decode.packed import unsupported_reason

__all__ = ["BatchConfig", "DecodeLoop", "unsupported_reason"]
