"""The moe_router training fit (benchmarks/train_moe_router.py) on synthetic data: it finds the
expert that predicts the importance, and it is deterministic (same data, same gate)."""

from __future__ import annotations

import torch

from benchmarks.moe_router_signal import lost_share, n_kept
from benchmarks.train_moe_router import fit_head


def _data(informative: int, experts: int = 3, docs: int = 4, tokens: int = 64):
    generator = torch.Generator().manual_seed(0)
    c = torch.rand(docs, tokens, generator=generator)
    z = torch.randn(docs, 3, experts, tokens, generator=generator)
    z[:, :, informative] = (c - c.mean(-1, keepdim=True)).unsqueeze(1)  # this expert ranks tokens by importance
    x = torch.rand(docs, 3, 4, generator=generator)
    k = torch.tensor([[n_kept(tokens, r) for r in (0.25, 0.5, 0.75)]] * docs)
    return z, c, x, k, torch.zeros(docs, tokens, dtype=torch.bool)


def test_the_fit_routes_to_the_expert_that_predicts_importance():
    data = _data(informative=2)
    theta, loss = fit_head(data, torch.zeros(4), torch.ones(4), 3)
    z_x = torch.cat([torch.ones(4, 3, 1), data[2]], dim=-1)
    p = torch.softmax(torch.einsum("ef,drf->dre", theta, z_x), dim=-1)
    assert bool((p.argmax(-1) == 2).all())
    c, k = data[1], data[3]
    oracle = sum(float(lost_share(c[d], c[d], int(k[d, r]))) for d in range(4) for r in range(3)) / 12
    assert loss < oracle + 0.02  # about what keeping the truly important tokens loses


def test_the_fit_is_deterministic():
    a, _ = fit_head(_data(informative=1), torch.zeros(4), torch.ones(4), 3)
    b, _ = fit_head(_data(informative=1), torch.zeros(4), torch.ones(4), 3)
    assert torch.equal(a, b)
