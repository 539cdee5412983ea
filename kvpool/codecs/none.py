"""Codec ``none``: tensors stored as they come, in the model dtype."""

from __future__ import annotations

from kvpool.codecs.base import Codec
from kvpool.compressed_kv import CompressedKV
from kvpool.errors import CodecError


class NoneCodec(Codec):
    name = "none"

    def encode(self, ckv: CompressedKV) -> CompressedKV:
        if ckv.meta.codec != "none":
            raise CodecError(f"cache is encoded with {ckv.meta.codec!r}; decode it first")
        return ckv

    def decode(self, ckv: CompressedKV) -> CompressedKV:
        if ckv.meta.codec != "none":
            raise CodecError(f"cache is encoded with {ckv.meta.codec!r}; use kvpool.codecs.decode()")
        return ckv
