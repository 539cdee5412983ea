"""Codec ``fp8``: float8 e4m3 (``torch.float8_e4m3fn``) with a float32 scale per row.

Each row is scaled so its largest magnitude lands on 448, e4m3's largest finite value, then cast.
Error bound per element: ``|err| <= max(|x| / 16, s / 1024)`` with ``s = max|x_row| / 448``
(3 mantissa bits; below 2**-6 the format is subnormal with steps of 2**-9). Same bytes as int8;
better for heavy-tailed rows, worse for flat ones. Raises CodecError where this torch build or
device cannot cast to float8 (use ``int8`` there).
"""

from __future__ import annotations

import functools

import torch

from kvpool.codecs.row_scaled import RowScaledCodec, row_scales
from kvpool.errors import CodecError

FP8_DTYPE = getattr(torch, "float8_e4m3fn", None)
FP8_MAX = 448.0


def fp8_supported(device: torch.device | str = "cpu") -> bool:
    """True if tensors on ``device`` can be cast to and from float8 e4m3 here (probed once per device)."""
    return _probe(str(torch.device(device)))


@functools.lru_cache(maxsize=None)
def _probe(device: str) -> bool:
    if FP8_DTYPE is None:
        return False
    try:
        probe = torch.ones(2, device=device).to(FP8_DTYPE).to(torch.float32)
    except (RuntimeError, TypeError):
        return False
    return bool(probe.eq(1).all())


class FP8Codec(RowScaledCodec):
    name = "fp8"

    def encode_tensor(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not fp8_supported(tensor.device):
            raise CodecError(f"torch {torch.__version__} cannot cast to float8_e4m3fn on {tensor.device}; "
                             "use codec 'int8' instead")
        scale = row_scales(tensor, FP8_MAX)
        scaled = (tensor.to(scale.dtype) / scale).clamp_(-FP8_MAX, FP8_MAX)
        return scaled.to(FP8_DTYPE), scale
