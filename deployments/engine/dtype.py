"""Which dtype the model runs in: ``model.dtype: auto`` picks bfloat16 where the device runs it fast.

``auto`` resolves to:

- ``bfloat16`` on a CUDA device that supports it (``torch.cuda.is_bf16_supported()``: Ampere and
  later); ``float32`` on an older GPU (float16 is never chosen for you: several presses overflow in
  it);
- ``bfloat16`` on a CPU with AMX (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``) - Sapphire
  Rapids and later, Zen 4/5: PyTorch's oneDNN kernels run bfloat16 matmuls there at 3-4x the
  float32 prefill rate (benchmarks/dtype_cpu.py);
- ``float32`` on any other CPU (bfloat16 there is emulated and slower than float32).

The decision is the pure function ``choose_dtype`` (flags in, choice and reason out: a test mocks
the flags); ``detect_cpu_flags`` reads them from ``/proc/cpuinfo`` (Linux; elsewhere there are
none and ``auto`` stays float32). ``load_model`` logs the choice and its reason at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the bfloat16 matmul units


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a model runs in (``name``: a key of TORCH_DTYPES) and why it was chosen."""

    name: str
    reason: str

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.name]


def choose_dtype(requested: str, device: str, cpu_flags: frozenset[str], cuda_bf16: bool = False) -> DtypeChoice:
    """Resolve ``model.dtype`` for ``device`` (``cpu`` or ``cuda[:N]``).

    ``cpu_flags``: the CPU's feature flags (``detect_cpu_flags()``); ``cuda_bf16``: whether the
    CUDA device supports bfloat16. An explicit dtype is kept as given. Raises ValueError on a name
    outside DTYPE_NAMES."""
    if requested not in DTYPE_NAMES:
        raise ValueError(f"model.dtype {requested!r} is not one of {', '.join(DTYPE_NAMES)}")
    if requested != "auto":
        return DtypeChoice(requested, f"model.dtype is {requested}")
    if device.startswith("cuda"):
        if cuda_bf16:
            return DtypeChoice("bfloat16", f"auto: {device} supports bfloat16")
        return DtypeChoice("float32", f"auto: {device} has no bfloat16 support (pre-Ampere GPU)")
    found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags]
    if found:
        return DtypeChoice("bfloat16", f"auto: the CPU has {' and '.join(found)} (bfloat16 matmuls in hardware)")
    if not cpu_flags:
        return DtypeChoice("float32", "auto: CPU flags unreadable (no /proc/cpuinfo); bfloat16 not known to be fast")
    return DtypeChoice("float32", f"auto: the CPU has none of {', '.join(BF16_CPU_FLAGS)} "
                                  "(bfloat16 would be emulated, slower than float32)")


def detect_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's ``flags`` line of ``/proc/cpuinfo``; empty where there is none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def resolve_dtype(requested: str, device: str) -> DtypeChoice:
    """``choose_dtype`` with this machine's CPU flags and CUDA support."""
    cuda_bf16 = device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return choose_dtype(requested, device, detect_cpu_flags(), cuda_bf16)
