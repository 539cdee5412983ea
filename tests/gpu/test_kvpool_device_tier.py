"""KVPool's accelerator tier on a real CUDA device: device -> host -> disk spills, promotion back to
the device, bit-identical data, and codecs on device tensors. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from kvpool import KVPool, KVPoolConfig, SessionId, Tier, codecs
from kvpool.synthetic import synthetic_kv

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def cache(seed: int):
    return synthetic_kv(num_layers=4, num_kv_heads=3, head_dim=64, original_tokens=64, seed=seed)


def same(a, b) -> bool:
    return all(torch.equal(x.keys.cpu(), y.keys.cpu()) and torch.equal(x.values.cpu(), y.values.cpu())
               for x, y in zip(a.layers, b.layers))


def test_device_tier_spills_and_promotes(tmp_path):
    unit = cache(0).nbytes
    config = KVPoolConfig(device="cuda", device_budget_bytes=2 * unit, host_budget_bytes=2 * unit,
                          disk_dir=tmp_path, disk_budget_bytes=2 * unit)
    with KVPool(config) as pool:
        handles = [pool.put(cache(i), SessionId(f"s{i}")) for i in range(6)]
        assert [pool.info(h).tier for h in handles] == [Tier.DISK] * 2 + [Tier.HOST] * 2 + [Tier.DEVICE] * 2
        assert pool.get(handles[5]).device.type == "cuda"
        restored = pool.get(handles[0])  # disk -> device, swapping others down
        assert restored.device.type == "cuda" and pool.info(handles[0]).tier is Tier.DEVICE
        assert same(restored, cache(0))
        assert pool.audit() == {"device": 2 * unit, "host": 2 * unit, "disk": 2 * unit}


def test_codecs_on_device_tensors(tmp_path):
    unit = cache(0).nbytes
    config = KVPoolConfig(device="cuda:0", device_budget_bytes=4 * unit, host_budget_bytes=unit)
    with KVPool(config) as pool:
        handle = pool.put(cache(1), SessionId("a"))
        info = pool.quantize(handle, "int8")
        assert info.tier is Tier.DEVICE and info.nbytes < unit / 2
        decoded = pool.get(handle, decoded=True)
        assert decoded.device.type == "cuda"
        assert torch.allclose(decoded.layers[0].keys.cpu(), cache(1).layers[0].keys, atol=0.05)
        if codecs.fp8_supported("cuda"):
            fp8 = codecs.decode(codecs.encode(cache(2).to("cuda"), "fp8"))
            assert torch.allclose(fp8.layers[0].keys.cpu(), cache(2).layers[0].keys, rtol=0.07, atol=0.01)
