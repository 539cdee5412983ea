"""Codec ``int8``: symmetric per-row (per head and token) int8 with a float32 scale per row (see row_scaled).

``q = round(x / s)`` clamped to [-127, 127] with ``s = max|x_row| / 127``; decoding returns
``q * s``. Error bound per element: ``|x - decode(encode(x))| <= s / 2 = max|x_row| / 254`` (plus
the rounding of the model dtype). Bytes: 1 per element + 4 per row of ``head_dim`` elements,
i.e. 0.27x of float32 and 0.53x of bfloat16 at head_dim 64.
"""

from __future__ import annotations

import torch

from kvpool.codecs.row_scaled import RowScaledCodec, row_scales

INT8_MAX_CODE = 127.0


class Int8Codec(RowScaledCodec):
    name = "int8"

    def encode_tensor(self, tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = row_scales(tensor, INT8_MAX_CODE)
        codes = torch.round(tensor.to(scale.dtype) / scale).clamp_(-INT8_MAX_CODE, INT8_MAX_CODE)
        return codes.to(torch.int8), scale

    def decode_tensor(self, codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (codes * scale).to(dtype)  # int8 * float32 promotes in one pass (fp8 cannot: see base)
