"""KVzip with its scoring computed in float32 blocks of reconstruction queries.

KVzip (Kim et al., 2025, arXiv 2505.23416; kvpress ``KVzipPress``) scores each context KV pair
by the largest attention any context-reconstruction query pays it: for a chunk of the context,
``score[h, k] = max over g, q of softmax(q . K^T / sqrt(d))[q, k]``, the softmax taken over the
attention sinks, the chunk and the causal reconstruction tokens. kvpress materialises the whole
``[kv_heads, groups, q_len, sinks + chunk + q_len]`` attention matrix per layer in the model's
dtype, divides it, adds a causal mask and runs a softmax over it before taking the max; on a CPU
that is most of a load (about 100 ms per layer at 1k tokens, 500 ms at 2k, in either dtype:
docs/benchmarks.md).

This press computes the same scores without that matrix: for ``BLOCK_ROWS`` queries at a time
it forms the block's scores in float32 (only the key columns the causal mask leaves visible),
takes their log-sum-exp, and keeps the running max of ``score - logsumexp`` over the chunk's
columns, since ``max_q softmax[q, k] = exp(max_q (s[q, k] - lse[q]))``. Each block stays in
cache, and float32 is more precise than kvpress's bfloat16 softmax (relative error ~1e-6 vs
~2e-2 against float64). The scores are kept in float32 until the top-k. Everything else -
chunking, prompts, sinks, the cross-layer top-k, the per-head masks - is kvpress's own code.
``kvzip_plus_normalization`` runs kvpress's stock scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kvpress import KVzipPress
from kvpress.utils import get_prerope_query_states
from transformers.models.llama.modeling_llama import rotate_half

BLOCK_ROWS = 32  # reconstruction queries per block: a block's float32 scores fit in L2 (benchmarks/kvzip_scoring.py)


def max_attention(queries: torch.Tensor, keys: torch.Tensor, first: int, count: int,
                  block_rows: int = BLOCK_ROWS) -> torch.Tensor:
    """Per key, the largest causal-softmax attention any query pays it, over ``count`` key columns.

    ``queries``: ``[kv_heads, groups, q_len, d]``, already scaled by ``1/sqrt(d)``; ``keys``:
    ``[kv_heads, n_keys, d]`` whose last ``q_len`` rows are the queries' own tokens (causal: query
    ``i`` sees every earlier key and those own rows ``0..i``). Returns float32 ``[kv_heads, count]``:
    ``max over groups, queries of softmax(queries . keys^T)[..., first:first + count]``.
    """
    heads, groups, q_len, dim = queries.shape
    queries, keys_t = queries.float(), keys.float().transpose(1, 2)  # [h, d, n_keys]
    past = keys.shape[1] - q_len  # keys every query sees
    best = torch.full((heads, count), -math.inf, device=queries.device)
    future = torch.ones(block_rows, block_rows, dtype=torch.bool, device=queries.device).triu_(1)
    for start in range(0, q_len, block_rows):
        stop = min(q_len, start + block_rows)
        rows = stop - start
        block = queries[:, :, start:stop].reshape(heads, groups * rows, dim)
        scores = torch.bmm(block, keys_t[:, :, : past + stop]).view(heads, groups, rows, past + stop)
        scores[..., past + start:].masked_fill_(future[:rows, :rows], -math.inf)
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        torch.maximum(best, (scores[..., first:first + count] - lse).amax(dim=(1, 2)), out=best)
    return best.exp_()


@dataclass
class BlockedKVzipPress(KVzipPress):
    """kvpress ``KVzipPress`` (same fields, same kept set up to float rounding) with the scoring of
    ``max_attention``; see the module docstring."""

    def prepare(self, model, tokenizer, prev_postfix_size: int = 8):
        pairs = super().prepare(model, tokenizer, prev_postfix_size)
        self.score_val = self.score_val.float()  # [layers, 1, kv_heads, context]: the top-k runs in float32
        return pairs

    def score_kvzip(self, module, hidden_states, keys, values, attentions, kwargs):
        if self.kvzip_plus_normalization or hidden_states.shape[0] != 1:
            return super().score_kvzip(module, hidden_states, keys, values, attentions, kwargs)
        q_len = hidden_states.shape[1]
        sink = min(self.n_sink, self.start_idx)
        heads = module.config.num_key_value_heads
        queries = get_prerope_query_states(module, hidden_states)[0].float()  # [heads_q, q_len, d]
        cos, sin = (t[0].float() for t in kwargs["position_embeddings"])  # [q_len, d]
        queries = (queries * cos + rotate_half(queries) * sin) * (1.0 / math.sqrt(module.head_dim))
        queries = queries.view(heads, -1, q_len, module.head_dim)
        picked = torch.cat([keys[0, :, :sink], keys[0, :, self.start_idx:self.end_idx], keys[0, :, -q_len:]], dim=1)
        self.score_val[int(module.layer_idx), 0, :, self.start_idx:self.end_idx] = max_attention(
            queries, picked, sink, self.end_idx - self.start_idx)
        return keys[:, :, : self.context_length], values[:, :, : self.context_length]
