"""kvpress ``NonCausalAttnPress``'s chunked attention, a few chunks per call.

``NonCausalAttnPress`` (the attention half of ``CompactorPress``, Chari & Van Durme 2025, arXiv
2507.08143) scores each key by the attention the queries of its own chunk (``chunk_size`` tokens,
no causal mask) pay it: per chunk ``softmax(Q K^T)`` in float32, summed over queries. kvpress
computes all chunks in one call, materialising a ``[B, H, S/chunk, chunk, chunk]`` float32 copy of
the scores and its softmax - 40 MB per layer at 4k tokens, streamed through memory twice. Chunks
attend only within themselves, so running the same function ``CHUNKS_PER_CALL`` chunks at a time
gives the same tensor bit for bit (tests/unit/engine/test_seeded_presses.py) with each call's
tensors in cache: 98 -> 78 ms per layer at 4k tokens in bfloat16, 1 thread (random scores; the
whole-load effect is in ``benchmarks/dtype_cpu.py``, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kvpress.presses.non_causal_attention_press import NonCausalAttnPress

CHUNKS_PER_CALL = 2  # [9 heads, 2, 256, 256] float32 scores + softmax stay within a core's L2


@dataclass
class GroupedNonCausalAttnPress(NonCausalAttnPress):
    """kvpress ``NonCausalAttnPress`` with ``non_causal_chunked_attn`` run on ``CHUNKS_PER_CALL``
    chunks at a time. Chunks attend only within themselves, so the result is the same tensor,
    bit for bit (tests/unit/engine/test_seeded_presses.py); the float32 copy of the scores and their
    softmax stay in cache instead of streaming a ``[heads, S/chunk, chunk, chunk]`` float32 tensor
    through memory (98 -> 78 ms per layer at 4k tokens, bfloat16, 1 thread)."""

    @staticmethod
    def non_causal_chunked_attn(q: torch.Tensor, k: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """``q``, ``k``: ``[B, H, S, d]`` -> ``[B, H, S]``, as kvpress's."""
        step = chunk_size * CHUNKS_PER_CALL
        stock = NonCausalAttnPress.non_causal_chunked_attn
        return torch.cat([stock(q[..., i:i + step, :], k[..., i:i + step, :], chunk_size)
                          for i in range(0, k.shape[-2], step)], dim=-1)
