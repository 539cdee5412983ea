"""A press that draws random numbers keeps the same entries on every load of one context
(deployments/engine/press_rng.py), and the process's own random stream is left as it was."""

from __future__ import annotations

import torch

from kvpool import PressSpec
from tests.conftest import document


def _kept(ckv) -> list[torch.Tensor]:
    return [layer.keys for layer in ckv.layers]


def test_compactor_keeps_the_same_entries_whatever_was_drawn_before(engine):
    spec = PressSpec(name="compactor", compression_ratio=0.25)
    context = document(12)
    torch.manual_seed(1)
    first = engine.prefill(context, spec)
    torch.manual_seed(2)
    torch.randn(1000)  # another request's draws in between
    second = engine.prefill(context, spec)
    assert first.meta.kept_tokens < first.meta.original_tokens
    assert all(torch.equal(a, b) for a, b in zip(_kept(first), _kept(second), strict=True))


def test_a_load_leaves_the_global_random_stream_where_it_was(engine):
    torch.manual_seed(7)
    expected = torch.randn(4)
    torch.manual_seed(7)
    engine.prefill(document(4), PressSpec(name="compactor", compression_ratio=0.5))
    assert torch.equal(torch.randn(4), expected)
