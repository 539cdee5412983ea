"""CompressedKV: one session's pruned KV cache plus what is needed to keep decoding from it.

Layout. Each layer holds keys and values for its KV heads. Presses that prune the same number of
tokens in every head (Knorm, SnapKV, StreamingLLM ...) give a *dense* layer: tensors of shape
``[heads, kept, head_dim]``. Per-head presses (AdaKV, CriticalAdaKV, KVzip ...) keep a different
number of tokens per head; kvpress only *masks* those entries, but kvfleet stores them *ragged*:
``[sum(head_lengths), head_dim]`` plus ``head_lengths``, so the bytes held really shrink.
``to_cache()`` re-pads ragged layers to a common length and returns the padded slots as masked
key indices, which kvpress's attention patch turns into keys that receive zero attention.

Codecs. ``codec == "none"`` stores keys/values in the model dtype; quantizing codecs (kvpool.codecs)
store integer tensors plus per-layer scales in ``LayerKV.scales``.

The object is treated as immutable once built: decoding works on a copy (``to_cache``), never on
the stored tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from kvpool.errors import CacheLayoutError


@dataclass(frozen=True)
class LayerKV:
    """Keys/values of one attention layer, as stored.

    Dense: ``keys``/``values`` are ``[heads, kept, head_dim]`` and ``head_lengths`` is None.
    Ragged: ``keys``/``values`` are ``[sum(head_lengths), head_dim]``, head-major, each head's
    entries in their original order.
    ``scales``: codec-specific tensors (e.g. int8 scales); empty for codec "none".
    """

    keys: torch.Tensor
    values: torch.Tensor
    head_lengths: tuple[int, ...] | None = None
    scales: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def is_ragged(self) -> bool:
        return self.head_lengths is not None

    def kept_entries(self) -> int:
        """Number of (head, token) KV pairs held in this layer."""
        if self.head_lengths is not None:
            return sum(self.head_lengths)
        return self.keys.shape[0] * self.keys.shape[1]

    def nbytes(self) -> int:
        tensors = [self.keys, self.values, *self.scales.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def max_head_length(self) -> int:
        if self.head_lengths is not None:
            return max(self.head_lengths, default=0)
        return self.keys.shape[1]

    def padded(self, length: int, num_heads: int,
               spare: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``[1, heads, length + spare, dim]`` keys/values and a bool pad mask ``[heads, length]``.

        The first ``length`` columns hold the cache (a head's padding zeroed); the ``spare`` columns
        after them are left uninitialised, room for a decoder to write its new tokens in place. Dense
        layers shorter than ``length`` are padded too (layers of one cache must share a length for
        transformers' attention mask). With ``spare`` 0, a dense layer of exactly ``length`` columns
        is returned as views (never to be written) and its pad mask is None.
        """
        head_dim = self.keys.shape[-1]
        if spare == 0 and self.head_lengths is None and self.keys.shape[1] == length:
            return self.keys.unsqueeze(0), self.values.unsqueeze(0), None
        lengths = self.head_lengths or (self.keys.shape[1],) * num_heads
        keys = self.keys.new_empty((1, num_heads, length + spare, head_dim))
        values = self.values.new_empty((1, num_heads, length + spare, head_dim))
        pad = torch.ones((num_heads, length), dtype=torch.bool, device=self.keys.device)
        flat_keys = self.keys.reshape(-1, head_dim)
        flat_values = self.values.reshape(-1, head_dim)
        start = 0
        for head, n in enumerate(lengths):
            keys[0, head, :n] = flat_keys[start : start + n]
            values[0, head, :n] = flat_values[start : start + n]
            keys[0, head, n:length] = 0  # padding: finite, and attended with weight 0 (masked keys)
            values[0, head, n:length] = 0
            pad[head, :n] = False
            start += n
        return keys, values, pad


@dataclass(frozen=True)
class KVMeta:
    """Everything besides tensors needed to continue decoding from a stored cache.

    ``original_tokens``: tokens read at prefill. ``kept_tokens``: average tokens kept per head
    (exact for dense layouts). ``next_position``: the RoPE position of the next token fed (kvpress
    keeps original positions, so usually ``original_tokens``). ``prompt``: the engine's JSON-able
    description of the rendered context, used to splice later questions in. ``token_ids``: the
    context's token ids (for the prefix index and rebuilds). ``press_stats``: what the press
    reported about this load (``get_stats()`` of e.g. moe_router: experts, weights and tokens kept
    per layer; ``{}`` for presses that report nothing), JSON-able.
    """

    model_id: str
    press: dict[str, Any]
    original_tokens: int
    kept_tokens: float
    next_position: int
    dtype: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    codec: str = "none"
    query_agnostic: bool = True
    prompt: dict[str, Any] = field(default_factory=dict)
    token_ids: tuple[int, ...] = ()
    press_stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["token_ids"] = list(self.token_ids)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KVMeta":
        data = dict(data)
        data["token_ids"] = tuple(data.get("token_ids", ()))
        return cls(**data)


@dataclass(frozen=True)
class CompressedKV:
    """A session's compressed cache: ``layers`` (one LayerKV per attention layer) + ``meta``."""

    layers: tuple[LayerKV, ...]
    meta: KVMeta

    def __post_init__(self) -> None:
        if len(self.layers) != self.meta.num_layers:
            raise CacheLayoutError(f"meta says {self.meta.num_layers} layers, got {len(self.layers)}")

    @property
    def nbytes(self) -> int:
        """Exact bytes of tensor data held (keys, values and codec scales)."""
        return sum(layer.nbytes() for layer in self.layers)

    @property
    def is_ragged(self) -> bool:
        return any(layer.is_ragged for layer in self.layers)

    @property
    def device(self) -> torch.device:
        return self.layers[0].keys.device

    def with_meta(self, **changes: Any) -> "CompressedKV":
        return replace(self, meta=replace(self.meta, **changes))

    def to(self, device: str | torch.device) -> "CompressedKV":
        """Copy of this cache on ``device`` (no copy if already there)."""
        layers = tuple(
            replace(
                layer,
                keys=layer.keys.to(device),
                values=layer.values.to(device),
                scales={k: v.to(device) for k, v in layer.scales.items()},
            )
            for layer in self.layers
        )
        return replace(self, layers=layers)

    def padded_layers(self, spare: int = 0) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor | None]]:
        """Per-layer ``[1, heads, T + spare, dim]`` keys/values sharing one T, plus per-layer ``[heads, T]``
        pad masks (``LayerKV.padded``: with ``spare`` > 0, fresh buffers a decoder may write into).

        Raises CacheLayoutError if the codec is not "none" (decode with kvpool.codecs first).
        """
        if self.meta.codec != "none":
            raise CacheLayoutError(f"cache is stored with codec {self.meta.codec!r}; decode it before use")
        length = max(layer.max_head_length() for layer in self.layers)
        pairs, masks = [], []
        for layer in self.layers:
            keys, values, pad = layer.padded(length, self.meta.num_kv_heads, spare)
            pairs.append((keys, values))
            masks.append(pad)
        return pairs, masks


def layer_from_mask(keys: torch.Tensor, values: torch.Tensor, masked: torch.Tensor | None) -> LayerKV:
    """Build a LayerKV from a kvpress layer: ``[1, heads, T, dim]`` tensors and a bool mask.

    ``masked`` is ``[heads, T]`` (True = pruned by a per-head press) or None (dense).
    Pruned entries are dropped: the result is ragged, and its bytes shrink accordingly.
    """
    if keys.shape[0] != 1:
        raise CacheLayoutError(f"batch size must be 1, got {keys.shape[0]}")
    if masked is None or not bool(masked.any()):
        return LayerKV(keys[0].contiguous(), values[0].contiguous())
    keep = ~masked
    head_lengths = tuple(int(n) for n in keep.sum(dim=1).tolist())
    return LayerKV(keys[0][keep].contiguous(), values[0][keep].contiguous(), head_lengths=head_lengths)
