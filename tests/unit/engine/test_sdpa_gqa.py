"""deployments/engine/sdpa_gqa.py: masked CPU attention through SDPA's enable_gqa, same numbers."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations import sdpa_attention

from deployments.engine import sdpa_gqa


class Attention(torch.nn.Module):
    num_key_value_groups = 3
    is_causal = True


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("new", [1, 19])
def test_masked_cpu_attention_is_bit_identical_without_the_head_copies(dtype, new):
    generator = torch.Generator().manual_seed(new)
    query = torch.randn(1, 9, new, 64, generator=generator).to(dtype)
    key, value = (torch.randn(1, 3, 300 + new, 64, generator=generator).to(dtype) for _ in range(2))
    mask = (torch.arange(300 + new)[None, :] <= torch.arange(300, 300 + new)[:, None])[None, None]
    repeated = torch.nn.functional.scaled_dot_product_attention(
        query, sdpa_attention.repeat_kv(key, 3), sdpa_attention.repeat_kv(value, 3), attn_mask=mask)
    sdpa_gqa.install()
    sdpa_gqa.install()  # idempotent
    assert sdpa_attention.use_gqa_in_sdpa(mask, key)
    assert not getattr(sdpa_attention.use_gqa_in_sdpa.kvfleet_inner, "kvfleet_cpu_gqa", False)
    out, _ = sdpa_attention.sdpa_attention_forward(Attention(), query, key, value, mask)
    assert torch.equal(out, repeated.transpose(1, 2))


def test_other_devices_keep_transformers_rule():
    sdpa_gqa.install()
    mask = torch.ones(1, 1, 2, 4, dtype=torch.bool, device="meta")
    key = torch.empty(1, 3, 4, 8, device="meta")
    assert sdpa_attention.use_gqa_in_sdpa(mask, key) == sdpa_attention.use_gqa_in_sdpa.kvfleet_inner(mask, key)
    assert sdpa_attention.use_gqa_in_sdpa(None, key)
