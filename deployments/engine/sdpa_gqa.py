"""Grouped-query attention without copies on CPU, for masked SDPA calls too.

transformers' ``sdpa_attention_forward`` passes ``enable_gqa=True`` to
``torch.nn.functional.scaled_dot_product_attention`` only when no attention mask is given
(``use_gqa_in_sdpa``: on CUDA a mask sends GQA to the math kernel). Otherwise it first copies
every key and value head ``num_key_value_groups`` times (``repeat_kv``: SmolLM2 has 3 KV heads
for 9 query heads, so 3x the layer's whole cache per forward). Every forward kvfleet runs with a
mask pays that copy: a question joining a stored cache (an extend: causal mask over cache +
question), KVzip's reconstruction passes, a prefill after a prefix. On CPU, torch >= 2.5 takes
``enable_gqa`` with a mask and computes the same numbers without the copy (bit-identical:
tests/unit/engine/test_sdpa_gqa.py; a 19-token question joining a stored 3k-token cache, first
token in 105.7 vs 120.8 ms, benchmarks/join_ttft.py). ``install()`` makes transformers do that for
CPU tensors; CUDA, XPU and NPU keep transformers' own rule.
"""

from __future__ import annotations

import threading

import torch
from transformers.integrations import sdpa_attention

_lock = threading.Lock()


def install() -> None:
    """Route masked CPU SDPA calls through ``enable_gqa`` (idempotent, thread-safe)."""
    with _lock:
        current = sdpa_attention.use_gqa_in_sdpa
        if getattr(current, "kvfleet_cpu_gqa", False):
            return

        def use_gqa_in_sdpa(attention_mask: torch.Tensor | None, key: torch.Tensor) -> bool:
            if key.device.type == "cpu" and sdpa_attention._is_torch_greater_or_equal_than_2_5:
                return True
            return current(attention_mask, key)

        use_gqa_in_sdpa.kvfleet_cpu_gqa = True
        use_gqa_in_sdpa.kvfleet_inner = current
        sdpa_attention.use_gqa_in_sdpa = use_gqa_in_sdpa
