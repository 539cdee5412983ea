"""Storage codecs by name, and ``encode`` / ``decode`` helpers that pick the codec for you."""

from __future__ import annotations

from kvpool.codecs.base import Codec
from kvpool.codecs.fp8 import FP8Codec
from kvpool.codecs.int8 import Int8Codec
from kvpool.codecs.none import NoneCodec
from kvpool.compressed_kv import CompressedKV
from kvpool.errors import UnknownNameError

_CODECS: dict[str, Codec] = {}


def register_codec(codec: Codec) -> Codec:
    """Make ``codec`` available under ``codec.name``. Re-registering a name replaces it."""
    _CODECS[codec.name] = codec
    return codec


def codec_names() -> list[str]:
    return sorted(_CODECS)


def get_codec(name: str) -> Codec:
    """The codec called ``name``. Raises UnknownNameError listing the valid names."""
    try:
        return _CODECS[name.strip().lower()]
    except KeyError:
        raise UnknownNameError("codec", name, codec_names()) from None


def encode(ckv: CompressedKV, codec: str) -> CompressedKV:
    """``ckv`` stored with ``codec``; a cache already in ``codec`` is returned as is, another codec is
    decoded first."""
    if ckv.meta.codec == codec:
        return ckv
    return get_codec(codec).encode(decode(ckv))


def decode(ckv: CompressedKV) -> CompressedKV:
    """``ckv`` with codec ``"none"`` (what the engine needs); a no-op for codec ``"none"``."""
    return get_codec(ckv.meta.codec).decode(ckv)


for _codec in (NoneCodec(), Int8Codec(), FP8Codec()):
    register_codec(_codec)
