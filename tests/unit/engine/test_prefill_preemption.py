"""A background prefill gives way to a live one at the next decoder layer and is redone
(deployments/engine/preemption.py), on the real model, for presses that keep state on the model
while they run (hooks, per-head masks, kvzip's extra forwards, kvcompose's switch to eager).

The live prefill is made to arrive at a known layer of the background forward: a test pre-hook on
that layer starts it and waits until it is announced (``PrefillPriority.live``), so the
preemption check of the same layer sees it. Both results must equal a prefill that ran alone, and
the model must be left as it was (no hook, no mask, the same attention implementation).
"""

from __future__ import annotations

import threading

import pytest
import torch

from deployments.engine.preemption import PrefillPriority
from kvpool import PressSpec
from tests.conftest import document

PRESSES = {
    "none": {},
    "compactor": {"name": "compactor", "compression_ratio": 0.25},
    "kvzip": {"name": "kvzip", "compression_ratio": 0.5},
    "kvcompose": {"name": "kvcompose", "compression_ratio": 0.5},
    "adakv": {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "snapkv"}]},  # per-head masks
    "moe_router": {"name": "moe_router", "compression_ratio": 0.5},  # per-load router state and statistics
}
BACKGROUND_DOC, LIVE_DOC = document(8), document(3)


def _same(a, b) -> None:
    assert a.meta.kept_tokens == b.meta.kept_tokens and a.meta.next_position == b.meta.next_position
    assert a.meta.press_stats == b.meta.press_stats  # an abandoned try leaves nothing in a load's statistics
    for x, y in zip(a.layers, b.layers):
        assert torch.equal(x.keys, y.keys) and torch.equal(x.values, y.values)
        assert x.head_lengths == y.head_lengths  # per-head (ragged) layouts kept the same entries


def _model_left_clean(engine, attn_before: str) -> None:
    assert engine.model.config._attn_implementation == attn_before
    for layer in engine.masks.layers:
        assert not layer._forward_pre_hooks and not layer.self_attn._forward_hooks
        assert getattr(layer.self_attn, "masked_key_indices", None) is None


class LiveArrives:
    """A pre-hook on ``layer``: on the background thread's first pass, start a live prefill of
    ``LIVE_DOC`` under ``spec`` and return once it is announced (it then waits for the lock)."""

    def __init__(self, engine, layer: int, spec: PressSpec, times: int = 1):
        self.engine, self.spec, self.left = engine, spec, times
        self.background = threading.get_ident()
        self.live_results: list = []
        self.threads: list[threading.Thread] = []
        self.handle = engine.masks.layers[layer].register_forward_pre_hook(self._arrive)

    def _arrive(self, _module, _args) -> None:
        if threading.get_ident() != self.background or self.left == 0:
            return
        self.left -= 1
        thread = threading.Thread(target=lambda: self.live_results.append(self.engine.prefill(LIVE_DOC, self.spec)))
        self.threads.append(thread)
        thread.start()
        while not self.engine.priority.live_waiting():
            thread.join(0.001)

    def finish(self) -> None:
        self.handle.remove()
        for thread in self.threads:
            thread.join(60)


@pytest.mark.parametrize("name", sorted(PRESSES))
def test_a_live_prefill_preempts_a_background_one_and_both_equal_a_prefill_alone(engine, name):
    spec = PressSpec.model_validate(PRESSES[name])
    attn_before = engine.model.config._attn_implementation
    alone_background, alone_live = engine.prefill(BACKGROUND_DOC, spec), engine.prefill(LIVE_DOC, spec)
    preempted_before = engine.priority.preemptions
    arrives = LiveArrives(engine, layer=5, spec=spec)
    try:
        background = engine.prefill(BACKGROUND_DOC, spec, background=True)
    finally:
        arrives.finish()
    assert engine.priority.preemptions == preempted_before + 1
    assert len(arrives.live_results) == 1
    _same(background, alone_background)
    _same(arrives.live_results[0], alone_live)
    _model_left_clean(engine, attn_before)


def test_a_background_prefill_gives_way_at_most_max_preemptions_times_then_finishes(engine):
    spec = PressSpec.model_validate(PRESSES["compactor"])
    alone = engine.prefill(BACKGROUND_DOC, spec)
    preempted_before = engine.priority.preemptions
    arrives = LiveArrives(engine, layer=2, spec=spec, times=engine.priority.max_preemptions + 3)
    try:
        background = engine.prefill(BACKGROUND_DOC, spec, background=True)
    finally:
        arrives.finish()
    # it gave way max_preemptions times; its last try ran as live work, though live prefills kept arriving
    assert engine.priority.preemptions == preempted_before + engine.priority.max_preemptions
    assert len(arrives.live_results) == engine.priority.max_preemptions + 1
    _same(background, alone)


def test_a_live_prefill_is_never_preempted(engine):
    spec = PressSpec.model_validate(PRESSES["compactor"])
    alone = engine.prefill(BACKGROUND_DOC, spec)
    preempted_before = engine.priority.preemptions
    arrives = LiveArrives(engine, layer=5, spec=spec)
    try:
        with engine.priority.live():  # the "background" thread's own prefill is live here
            live = engine.prefill(BACKGROUND_DOC, spec)
    finally:
        arrives.finish()
    assert engine.priority.preemptions == preempted_before
    _same(live, alone)


def test_a_prefill_that_fails_mid_forward_leaves_no_mask_and_no_attention_switch(engine):
    """The kind of bug preemption exposed: any prefill that raises part-way left its press's per-head
    masks on the layers it reached (faking keys in the process's next forward)."""
    spec = PressSpec.model_validate(PRESSES["adakv"])
    alone = engine.prefill(LIVE_DOC, spec)
    attn_before = engine.model.config._attn_implementation

    def fail(_module, _args):
        raise RuntimeError("injected failure in the middle of the forward")

    handle = engine.masks.layers[20].register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            engine.prefill(BACKGROUND_DOC, spec)
    finally:
        handle.remove()
    _model_left_clean(engine, attn_before)
    _same(engine.prefill(LIVE_DOC, spec), alone)


def test_priority_counts_live_work_and_lets_background_run_when_none_waits():
    lock = threading.RLock()
    layers = [torch.nn.Identity() for _ in range(3)]
    priority = PrefillPriority(layers, lock, max_preemptions=2)

    def forward():
        x = torch.zeros(1)
        for layer in layers:
            x = layer(x) + 1
        return float(x)

    assert priority.run(forward, background=True) == 3.0 and priority.preemptions == 0
    with priority.live():
        assert priority.live_waiting()
    assert not priority.live_waiting()
    assert priority.run(forward, background=False) == 3.0
