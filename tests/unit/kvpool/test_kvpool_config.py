"""KVPoolConfig: closed model, readable sizes, tier pairing, CUDA tier only where CUDA exists."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from kvpool import KVPool, KVPoolConfig, PoolConfigError
from kvpool.sizes import format_bytes, parse_bytes


def test_unknown_field_is_an_error_naming_it():
    with pytest.raises(ValidationError, match="host_budget"):
        KVPoolConfig(host_budget=1)


def test_sizes_are_readable():
    config = KVPoolConfig(host_budget_bytes="512MiB", disk_dir="/tmp/x", disk_budget_bytes="2 GB")
    assert (config.host_budget_bytes, config.disk_budget_bytes) == (512 << 20, 2 * 10**9)
    assert parse_bytes(1024) == 1024 and format_bytes(3 << 20) == "3.0 MiB" and format_bytes(12) == "12 B"
    with pytest.raises(ValidationError, match="byte size"):
        KVPoolConfig(host_budget_bytes="lots")


@pytest.mark.parametrize("fields", [dict(disk_dir="/tmp/x"), dict(disk_budget_bytes=10),
                                    dict(device="cuda"), dict(device_budget_bytes=10)])
def test_tiers_need_a_place_and_a_budget(fields):
    with pytest.raises(ValidationError, match="together"):
        KVPoolConfig(**fields)


def test_unknown_codec_lists_valid_names():
    with pytest.raises(ValidationError, match="valid names: fp8, int8, none"):
        KVPoolConfig(default_codec="int4")


def test_device_must_be_cuda():
    with pytest.raises(ValidationError, match="CUDA"):
        KVPoolConfig(device="cpu", device_budget_bytes=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_tier_without_cuda_says_what_to_do():
    with pytest.raises(PoolConfigError, match="unset device"):
        KVPool(KVPoolConfig(device="cuda:0", device_budget_bytes=1 << 20))
