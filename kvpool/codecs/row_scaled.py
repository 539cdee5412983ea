"""Quantizing codecs that work per *row*: one scale per (head, token) key or value vector.

The scale is taken over ``head_dim``. Per-row (rather than per-channel) scales keep one outlier
token (an attention sink, say) from flattening every other token's precision, and they work
unchanged on dense ``[heads, kept, dim]`` and ragged ``[sum(head_lengths), dim]`` layers. The
cost is one float32 per vector (4 / head_dim bytes per element: 6 % at head_dim 64). Scales are
stored as ``LayerKV.scales["keys"]`` and ``["values"]``, shaped ``[..., 1]``.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace

import torch

from kvpool.codecs.base import Codec, torch_dtype
from kvpool.compressed_kv import CompressedKV, LayerKV
from kvpool.errors import CodecError

SCALE_DTYPE = torch.float32


def row_scales(tensor: torch.Tensor, max_code: float) -> torch.Tensor:
    """Per-row symmetric scale ``max|row| / max_code`` (float32, ``[..., 1]``); all-zero rows get 1."""
    scale = tensor.abs().amax(dim=-1, keepdim=True).to(SCALE_DTYPE) / max_code
    return torch.where(scale > 0, scale, torch.ones_like(scale))


class RowScaledCodec(Codec):
    """Template: subclasses say how one tensor is encoded and decoded given per-row scales."""

    def encode(self, ckv: CompressedKV) -> CompressedKV:
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
        """``[..., dim]`` tensor -> (codes of the same shape, float32 scales ``[..., 1]``)."""

    def decode_tensor(self, codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``codes * scale`` in ``dtype`` (float8 has no type promotion, hence the explicit cast)."""
        return (codes.to(scale.dtype) * scale).to(dtype)
