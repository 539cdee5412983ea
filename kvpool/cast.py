"""Convert a CompressedKV to another model dtype (a cache never meets a model of another dtype).

Replicas can run different dtypes (``model.dtype: auto`` picks bfloat16 on a GPU or an AMX CPU
and float32 on an older CPU). A cache that moves between them is converted on arrival, where the
target's pool stores it (``KVPool(dtype=...)``): the session keeps working, and the conversion is
logged with the session id. float32 -> bfloat16 rounds every key and value to bfloat16, exactly
what the target's model would have stored had it prefilled the context itself; bfloat16 ->
float32 is exact.

Codec ``none`` caches get their keys and values cast. Coded caches (int8, fp8) hold dtype-free
codes and float32 scales; only ``meta.dtype``, the dtype they decode to, changes.
"""

from __future__ import annotations

from dataclasses import replace

from kvpool.codecs.base import torch_dtype
from kvpool.compressed_kv import CompressedKV


def cast_dtype(ckv: CompressedKV, dtype: str) -> CompressedKV:
    """``ckv`` in ``dtype`` (e.g. ``"bfloat16"``); ``ckv`` itself when it already is.

    Bytes follow (``nbytes`` halves from float32 to bfloat16 for codec ``none``). Raises
    CodecError if ``dtype`` is not a torch dtype name."""
    target = torch_dtype(dtype)
    name = str(target).removeprefix("torch.")
    if ckv.meta.dtype == name:
        return ckv
    if ckv.meta.codec != "none":
        return ckv.with_meta(dtype=name)
    layers = tuple(replace(layer, keys=layer.keys.to(target), values=layer.values.to(target)) for layer in ckv.layers)
    return replace(ckv, layers=layers).with_meta(dtype=name)
