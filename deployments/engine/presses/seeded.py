"""Presses that draw random numbers while scoring, made reproducible: one context, one kept set.

kvpress ``LeverageScorePress`` (Chari & Van Durme 2025, arXiv 2507.08143: approximate leverage
scores from a right Gaussian sketch of the keys), ``CompactorPress`` (which blends those scores
with chunked non-causal attention) and ``CURPress`` with ``use_random_leverage`` draw their sketch
from torch's global RNG. Two loads of one document then keep different KV pairs; a session that
recovery re-prefills after a crash (kvfleet's fallback when its durable copy is gone) answers
differently than before at temperature 0; the compressed-prefix cache stores one draw of many; and
every load moves the process's RNG state. Here each layer draws from a fixed seed
(``seed + layer index``) inside ``torch.random.fork_rng``, which restores the global state
afterwards. The sketch has the same distribution - the papers' guarantees are about that
distribution - only the draw is pinned. ``seed`` (default 0) is a press argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import kvpress
import torch

from deployments.engine.presses.non_causal_grouped import GroupedNonCausalAttnPress


class _SeededScore:
    """Runs the press's ``score`` with the RNG seeded per layer; needs a ``seed`` field."""

    seed: int

    def score(self, module, hidden_states, keys, values, attentions, kwargs):
        with torch.random.fork_rng(device_type=keys.device.type if keys.device.type != "cpu" else None):
            torch.manual_seed(self.seed + int(getattr(module, "layer_idx", 0)))
            return super().score(module, hidden_states, keys, values, attentions, kwargs)


@dataclass
class SeededLeverageScorePress(_SeededScore, kvpress.LeverageScorePress):
    """kvpress ``LeverageScorePress`` with its sketch drawn from ``seed + layer index``."""

    seed: int = 0


@dataclass
class SeededCompactorPress(_SeededScore, kvpress.CompactorPress):
    """kvpress ``CompactorPress`` with its leverage sketch drawn from ``seed + layer index`` and its
    non-causal attention computed a few chunks at a time (``GroupedNonCausalAttnPress``)."""

    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self._non_causal_press = GroupedNonCausalAttnPress(compression_ratio=self.compression_ratio,
                                                           chunk_size=self.chunk_size)


@dataclass
class SeededCURPress(_SeededScore, kvpress.CURPress):
    """kvpress ``CURPress``; with ``use_random_leverage`` its sketch is drawn from ``seed + layer index``."""

    seed: int = 0
