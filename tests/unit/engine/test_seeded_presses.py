"""Presses with a random sketch keep the same KV pairs every time (deployments/engine/presses/seeded.py).

Stock kvpress draws the sketch of LeverageScorePress / CompactorPress / CURPress (random leverage)
from the global RNG: two loads of one document differ, so a session re-prefilled by recovery would
not answer as before. On the real model: two loads, with the global RNG moved in between, store the
same keys; the global RNG state is the same after a load as before; another ``seed`` is another draw
(the seed is really used, the test could fail)."""

from __future__ import annotations

import pytest
import torch

from kvpool import PressSpec
from tests.conftest import document

SKETCHED = [("compactor", {}), ("leverage", {}), ("cur", {"use_random_leverage": True})]


def keys_of(engine, spec: PressSpec) -> list[torch.Tensor]:
    ckv = engine.prefill(document(6), spec)
    return [layer.keys for layer in ckv.layers]


@pytest.mark.parametrize("name, kwargs", SKETCHED)
def test_two_loads_keep_the_same_pairs_and_leave_the_rng_alone(engine, name, kwargs):
    spec = PressSpec(name=name, compression_ratio=0.5, kwargs=kwargs)
    first = keys_of(engine, spec)
    torch.rand(7)  # the global RNG moves between loads (sampling does)
    state = torch.get_rng_state()
    second = keys_of(engine, spec)
    assert torch.equal(torch.get_rng_state(), state), "a load moved the global RNG"
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_another_seed_is_another_draw(engine):
    default = keys_of(engine, PressSpec(name="leverage", compression_ratio=0.5))
    other = keys_of(engine, PressSpec(name="leverage", compression_ratio=0.5, kwargs={"seed": 1}))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(default, other))
