"""kvpress's per-head masks on a model's attention modules.

kvpress's per-head presses (AdaKV-style, kvpress ``AdaKVPress``) do not drop a head's pruned keys:
they record them as ``module.masked_key_indices`` ``(batch_idx, head_idx, seq_idx)`` on each
attention module, and kvpress's attention patch fakes those keys (scores of -inf) on every later
forward. The model is shared by every request of a process, so a forward installs its own
request's masks for its duration and clears them after (``installed``), and a prefill takes the
masks the press left (``take``) to store them with the cache.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from transformers import DynamicCache


def masked_key_indices(pads: list[torch.Tensor | None]) -> list[tuple | None]:
    """Per-layer kvpress ``module.masked_key_indices`` ``(batch_idx, head_idx, seq_idx)`` (batch 0,
    as kvpress's AdaKV-style presses set them) from ``[H, T]`` bool pad masks (True: a head's
    padding); None for a layer that pads nothing (kvpress then builds no fake keys for it)."""
    masked: list[tuple | None] = []
    for pad in pads:
        if pad is None or not bool(pad.any()):
            masked.append(None)
            continue
        heads, seq = torch.nonzero(pad, as_tuple=True)
        masked.append((torch.zeros_like(heads), heads, seq))
    return masked


class AttentionMasks:
    """The attention modules of ``model`` (one per decoder layer) and their kvpress masks."""

    def __init__(self, model: torch.nn.Module):
        base = model.model
        base = base.language_model if hasattr(base, "language_model") else base
        self.layers: list[torch.nn.Module] = list(base.layers)
        self.modules: list[torch.nn.Module] = [layer.self_attn for layer in base.layers]

    def none(self) -> list[tuple | None]:
        """No masks on any layer (a dense cache, or no cache)."""
        return [None] * len(self.modules)

    @contextlib.contextmanager
    def installed(self, masks: list[tuple | None]) -> Iterator[None]:
        """Install per-layer ``masks`` (``masked_key_indices`` tuples or None) for one forward;
        cleared on exit, whatever happens. Call under the engine's lock (the model is shared)."""
        for module, mask in zip(self.modules, masks):
            module.masked_key_indices = mask
        try:
            yield
        finally:
            for module in self.modules:
                module.masked_key_indices = None

    @contextlib.contextmanager
    def cleared_on_error(self) -> Iterator[None]:
        """Around a prefill: if it raises, clear the masks its press left on the layers it reached
        (kvpress's attention patch would otherwise fake keys in the process's next forward)."""
        try:
            yield
        except BaseException:
            for module in self.modules:
                module.masked_key_indices = None
            raise

    def take(self, cache: DynamicCache) -> list[torch.Tensor | None]:
        """Collect (and clear) the masks a prefill press left, as ``[heads, T]`` bool tensors
        (True: pruned) per layer of ``cache``; None for a layer with none."""
        masks: list[torch.Tensor | None] = []
        for i, module in enumerate(self.modules):
            indices = getattr(module, "masked_key_indices", None)
            module.masked_key_indices = None
            if indices is None:
                masks.append(None)
                continue
            _, heads, length, _ = cache.layers[i].keys.shape
            mask = torch.zeros((heads, length), dtype=torch.bool, device=cache.layers[i].keys.device)
            mask[indices[1], indices[2]] = True
            masks.append(mask)
        return masks
