"""Byte sizes written for people: ``"512MiB"``, ``"2 GiB"``, ``"1.5GB"`` or a plain integer."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: int | float | str) -> int:
    """Return ``value`` in bytes. Integers pass through; strings take KB/MB/GB (10^3) or KiB/MiB/GiB (2^10).

    Raises ValueError naming the accepted units on anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a byte size, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    match = _PATTERN.match(value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"cannot read {value!r} as a byte size; write e.g. 536870912, '512MiB' or '2GB' "
                         f"(units: {', '.join(u for u in _UNITS if u)})")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(nbytes: int) -> str:
    """Short human form in binary units: ``format_bytes(3 * 2**20) == '3.0 MiB'``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    size, index = float(nbytes), 0
    while abs(size) >= 1024 and index < len(units) - 1:
        size, index = size / 1024, index + 1
    return f"{int(size)} B" if index == 0 else f"{size:.1f} {units[index]}"
