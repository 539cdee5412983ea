"""The storage-codec interface: encode a CompressedKV for storage, decode it back for use.

A codec changes how keys/values are *stored*, never which tokens are kept. ``encode`` takes a
cache with codec ``"none"`` and returns one whose ``meta.codec`` is the codec's name, with the
codec's extra tensors (e.g. scales) in ``LayerKV.scales``; ``decode`` inverts it and returns a
codec ``"none"`` cache in ``meta.dtype``, ready for ``CompressedKV.padded_layers()``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from kvpool.compressed_kv import CompressedKV
from kvpool.errors import CodecError


def torch_dtype(name: str) -> torch.dtype:
    """``"float16"`` or ``"torch.float16"`` -> ``torch.float16``; CodecError on anything else."""
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise CodecError(f"meta.dtype {name!r} is not a torch dtype (write e.g. 'bfloat16' or 'float32')")
    return dtype


class Codec(ABC):
    """Turns a codec-``none`` cache into its stored form and back."""

    name: ClassVar[str]

    @abstractmethod
    def encode(self, ckv: CompressedKV) -> CompressedKV:
        """Return ``ckv`` stored with this codec. Raises CodecError unless ``ckv.meta.codec == "none"``."""

    @abstractmethod
    def decode(self, ckv: CompressedKV) -> CompressedKV:
        """Return ``ckv`` with codec ``"none"`` in ``meta.dtype``. Raises CodecError on another codec."""
