"""``model.dtype: auto`` resolves as documented (deployments/engine/dtype.py): CPU flags mocked,
plus this machine's real answer, logged."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from deployments.engine.dtype import choose_dtype, detect_cpu_flags, resolve_dtype
from deployments.engine.model_loader import ModelConfig

SAPPHIRE_RAPIDS = frozenset("fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8".split())
ZEN4 = frozenset("fpu sse avx2 avx512f avx512_bf16".split())
SKYLAKE = frozenset("fpu sse avx2 avx512f avx512bw".split())


@pytest.mark.parametrize("flags, expected, named", [
    (SAPPHIRE_RAPIDS, "bfloat16", "amx_bf16 and avx512_bf16"),
    (ZEN4, "bfloat16", "avx512_bf16"),
    (SKYLAKE, "float32", "none of amx_bf16, avx512_bf16"),
    (frozenset(), "float32", "unreadable"),
])
def test_auto_on_cpu_follows_the_bfloat16_flags(flags, expected, named):
    choice = choose_dtype("auto", "cpu", flags)
    assert choice.name == expected and named in choice.reason


def test_auto_on_cuda_is_bfloat16_where_supported_else_float32():
    assert choose_dtype("auto", "cuda:0", frozenset(), cuda_bf16=True).name == "bfloat16"
    older = choose_dtype("auto", "cuda", SAPPHIRE_RAPIDS, cuda_bf16=False)  # the GPU decides, not the host CPU
    assert older.name == "float32" and "pre-Ampere" in older.reason


@pytest.mark.parametrize("name", ["float32", "bfloat16", "float16"])
def test_an_explicit_dtype_is_kept_whatever_the_hardware(name):
    assert choose_dtype(name, "cpu", SKYLAKE).name == name
    assert choose_dtype(name, "cpu", SAPPHIRE_RAPIDS).reason == f"model.dtype is {name}"


def test_unknown_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match="float8"):
        choose_dtype("float8", "cpu", SKYLAKE)
    with pytest.raises(ValidationError, match="dtype"):
        ModelConfig(dtype="float8")


def test_model_config_defaults_to_auto():
    assert ModelConfig().dtype == "auto"


def test_cpu_flags_are_read_from_the_first_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert detect_cpu_flags(cpuinfo) == {"fpu", "avx512_bf16", "amx_bf16"}
    assert detect_cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machine_resolves_auto_consistently_with_its_flags(caplog):
    choice = resolve_dtype("auto", "cpu")
    logging.getLogger(__name__).warning("this machine: model.dtype auto -> %s (%s)", choice.name, choice.reason)
    flags = detect_cpu_flags()
    assert (choice.name == "bfloat16") == bool({"amx_bf16", "avx512_bf16"} & flags)
