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


@pytest.mark.parametrize("tokens", [1051, 4129, 512, 700])  # not a multiple of the chunks per call, a multiple, short
def test_grouped_non_causal_attention_is_kvpress_bit_for_bit(tokens):
    from kvpress.presses.non_causal_attention_press import NonCausalAttnPress

    from deployments.engine.presses.non_causal_grouped import GroupedNonCausalAttnPress

    generator = torch.Generator().manual_seed(tokens)
    for dtype in (torch.float32, torch.bfloat16):
        q = (torch.randn(1, 9, tokens, 64, generator=generator) * 2).to(dtype)
        k = (torch.randn(1, 9, tokens, 64, generator=generator) * 2).to(dtype)
        ours = GroupedNonCausalAttnPress.non_causal_chunked_attn(q, k, 256)
        assert torch.equal(ours, NonCausalAttnPress.non_causal_chunked_attn(q, k, 256))


def test_denormals_are_flushed_in_a_thread_that_runs_the_model(loaded_models):
    """deployments/engine/denormals.py: a thread started with denormals on has them flushed once
    it runs a forward of the loaded model (the hook), in either dtype."""
    import threading

    seen = {}

    def run():
        torch.set_flush_denormal(False)
        seen["before"] = (torch.tensor([1e-39]) * 1.0).item()
        loaded = loaded_models("bfloat16")
        with torch.no_grad():
            loaded.model(input_ids=torch.tensor([[1, 2, 3]]))
        seen["after"] = (torch.tensor([1e-39]) * 1.0).item()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen["before"] > 0 and seen["after"] == 0, seen
