"""The storage-codec interface: encode a CompressedKV for storage, decode it back for use.

A codec changes how keys/values are *stored*, never which tokens are kept. ``encode`` takes a
cache with codec ``"none"`` and returns one whose ``meta.codec`` is the codec's name, with the
codec's extra tensors (e.g. scales) in ``LayerKV.scales``; ``decode`` inverts it and returns a
codec ``"none"`` cache in ``meta.dtype``, ready for ``CompressedKV.padded_layers()``.

Quantizing codecs here work per *row*: one scale per (head, token) key or value vector, taken
over ``head_dim``. That keeps one outlier token (an attention sink, say) from flattening every
other token's precision, and it works unchanged on dense ``[heads, kept, dim]`` and ragged
``[sum(head_lengths), dim]`` layers. The cost is one float32 per vector (4 / head_dim bytes per
element: 6 % at head_dim 64).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar

import torch

from kvpool.compressed_kv import CompressedKV, LayerKV
from kvpool.errors import CodecError

SCALE_DTYPE = torch.float32


def torch_dtype(name: str) -> torch.dtype:
    """``"float16"`` or ``"torch.float16"`` -> ``torch.float16``; CodecError on anything else."""
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise CodecError(f"meta.dtype {name!r} is not a torch dtype (write e.g. 'bfloat16' or 'float32')")
    return dtype


class Codec(ABC):
    """Encodes/decodes every key and value tensor of a cache, row by row."""

    name: ClassVar[str]

    def encode(self, ckv: CompressedKV) -> CompressedKV:
        """Return ``ckv`` stored with this codec. Raises CodecError unless ``ckv.meta.codec == "none"``."""
        if ckv.meta.codec != "none":
            raise CodecError(f"cache is already encoded with {ckv.meta.codec!r}; decode it before encoding "
                             f"with {self.name!r}")
        model_dtype = torch_dtype(ckv.meta.dtype)
        layers = []
        for i, layer in enumerate(ckv.layers):
            if layer.keys.dtype != model_dtype or layer.values.dtype != model_dtype:
                raise CodecError(f"layer {i} holds {layer.keys.dtype}/{layer.values.dtype} but meta.dtype is "
                                 f"{ckv.meta.dtype!r}; fix the cache's meta before encoding")
            keys, key_scale = self.encode_tensor(layer.keys)
            values, value_scale = self.encode_tensor(layer.values)
            layers.append(replace(layer, keys=keys, values=values, scales={"keys": key_scale, "values": value_scale}))
        return replace(ckv, layers=tuple(layers)).with_meta(codec=self.name)

    def decode(self, ckv: CompressedKV) -> CompressedKV:
        """Return ``ckv`` with codec ``"none"`` in ``meta.dtype``. Raises CodecError on another codec."""
        if ckv.meta.codec != self.name:
            raise CodecError(f"cache is encoded with {ckv.meta.codec!r}, not {self.name!r}; "
                             "decode it with kvpool.codecs.decode(), which picks the codec by name")
        dtype = torch_dtype(ckv.meta.dtype)
        layers = []
        for i, layer in enumerate(ckv.layers):
            if set(layer.scales) != {"keys", "values"}:
                raise CodecError(f"layer {i} has scales {sorted(layer.scales)}, expected ['keys', 'values']")
            layers.append(LayerKV(self.decode_tensor(layer.keys, layer.scales["keys"], dtype),
                                  self.decode_tensor(layer.values, layer.scales["values"], dtype),
                                  layer.head_lengths))
        return replace(ckv, layers=tuple(layers)).with_meta(codec="none")

    @abstractmethod
    def encode_tensor(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[..., dim]`` tensor -> (encoded tensor of the same shape, scales ``[..., 1]``)."""

    @abstractmethod
    def decode_tensor(self, encoded: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Inverse of ``encode_tensor`` up to the codec's rounding, returned in ``dtype``."""


def row_scales(tensor: torch.Tensor, max_code: float) -> torch.Tensor:
    """Per-row symmetric scale ``absmax / max_code`` (float32, ``[..., 1]``); all-zero rows get scale 1."""
    absmax = tensor.abs().amax(dim=-1, keepdim=True).to(SCALE_DTYPE) if tensor.shape[-1] else \
        tensor.new_zeros((*tensor.shape[:-1], 1), dtype=SCALE_DTYPE)
    scale = absmax / max_code
    return torch.where(scale > 0, scale, torch.ones_like(scale))
