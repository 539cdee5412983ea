"""kvpool.safe_paths: storage keys that become file names are plain names (the disk tier)."""

from __future__ import annotations

import pytest

from kvpool.disk_store import DiskStore
from kvpool.safe_paths import UnsafeNameError, safe_key


@pytest.mark.parametrize("key", ["abc123.1", "0f3e-aa_b.12"])
def test_plain_keys_pass(key):
    assert safe_key(key) == key


@pytest.mark.parametrize("key", ["../x", "/tmp/x", "a/b", ".hidden", "a..b", "", "x" * 201, "a\x00", "a b"])
def test_unsafe_keys_are_refused(key):
    with pytest.raises(UnsafeNameError):
        safe_key(key)


def test_disk_store_refuses_a_key_that_would_leave_its_directory(tmp_path):
    store = DiskStore(tmp_path / "disk")
    with pytest.raises(UnsafeNameError):
        store.write("../escaped", None)  # refused before the cache is even packed
    assert not (tmp_path / "escaped.kv").exists()
