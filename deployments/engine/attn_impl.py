"""The attention implementation a press needs, for one forward on a shared model."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def attention_implementation(model: torch.nn.Module, required: str | None) -> Iterator[None]:
    """Run the block with ``model``'s attention implementation set to ``required`` (``sdpa`` or
    ``eager``; None: as it is), and leave the model with the implementation it had before, whatever
    the block did or raised: kvpress's KVComposePress switches the config to ``eager`` inside its
    forward and switches back only when the forward completes (an abandoned or failed prefill
    would otherwise leave every later request of the process on eager attention)."""
    before = model.config._attn_implementation
    if required is not None and required != before:
        model.set_attn_implementation(required)
    try:
        yield
    finally:
        if model.config._attn_implementation != before:
            model.set_attn_implementation(before)
