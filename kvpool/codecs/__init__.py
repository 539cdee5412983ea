"""Storage codecs: ``base.Codec`` (interface), one file per codec, ``registry`` by name.

Use ``decode(ckv)`` before handing a stored cache to the engine (``padded_layers`` refuses codecs).
"""

from kvpool.codecs.base import Codec
from kvpool.codecs.fp8 import FP8Codec, fp8_supported
from kvpool.codecs.int8 import Int8Codec
from kvpool.codecs.none import NoneCodec
from kvpool.codecs.registry import codec_names, decode, encode, get_codec, register_codec

__all__ = ["Codec", "FP8Codec", "Int8Codec", "NoneCodec", "codec_names", "decode", "encode", "fp8_supported",
           "get_codec", "register_codec"]
