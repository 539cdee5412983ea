"""A press's random draws, fixed per load: the same context under the same press keeps the same entries.

Some kvpress scorers draw random numbers from torch's global generator while they score a
context - ``CompactorPress`` / ``LeverageScorePress`` sketch the keys with ``torch.randn``
(Chari & Van Durme 2025, a right Gaussian sketch), ``RandomPress`` without a ``seed`` draws its
scores. Unseeded, which entries a load keeps would depend on every draw the process made
before it, so two loads of one document (a re-prefill after a restart or a migration, another
replica, the README example run twice) could keep different entries and answer differently at
temperature 0. ``press_rng(device)`` runs a prefill on a fork of the global generator seeded
with ``PRESS_SEED`` and restores the previous state afterwards. Samplers use their own
``torch.Generator`` (deployments/engine/sampling/sampler.py) and are not affected.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

PRESS_SEED = 0


@contextlib.contextmanager
def press_rng(device: torch.device) -> Iterator[None]:
    """Fork torch's global generator(s) for ``device`` (CPU always; the CUDA device when on one),
    seed them with ``PRESS_SEED``, restore them on exit."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(PRESS_SEED)
        yield
