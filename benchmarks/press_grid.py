"""The presses and ratios the benchmarks sweep, by short label.

A label is a catalog press name, or ``wrapper(inner)`` for a wrapper around one inner press:
``adakv(snapkv)`` -> ``{"name": "adakv", "compression_ratio": r, "presses": [{"name": "snapkv"}]}``.
The ratio always goes on the outermost press (the wrappers pass it down).
"""

from __future__ import annotations

import re
from typing import Any

RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9)
QUALITY_PRESSES = ("knorm", "snapkv", "streaming_llm", "expected_attention", "tova", "adakv(snapkv)",
                   "critical_kv(snapkv)", "kvzip",
                   # added with kvpress 0.5.5's full catalog (issue 16)
                   "kvgrad", "pyramidkv", "finch", "cap", "non_causal_attn", "kvcompose")
_LABEL = re.compile(r"^([a-z_]+)(?:\(([a-z_]+)\))?$")


def press_spec(label: str, ratio: float) -> dict[str, Any]:
    """PressSpec JSON for ``label`` at ``ratio``; ``none`` (or ratio 0) is the uncompressed cache.

    Raises ValueError on a label that is not ``name`` or ``wrapper(inner)``.
    """
    match = _LABEL.match(label)
    if match is None:
        raise ValueError(f"press label {label!r} is not 'name' or 'wrapper(inner)', e.g. 'adakv(snapkv)'")
    name, inner = match.groups()
    if name == "none" or ratio == 0:
        return {"name": "none"}
    spec: dict[str, Any] = {"name": name, "compression_ratio": ratio}
    if inner:
        spec["presses"] = [{"name": inner}]
    return spec
