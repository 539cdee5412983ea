"""GPU paths of the transfer backends: NIXL VRAM, NCCL, CUDA IPC, gloo staging through host.

Skipped without CUDA (the NCCL test also needs two GPUs). Endpoints land received caches on
their current CUDA device (``TransferEndpoint.transfer_device``).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ray = pytest.importorskip("ray")

from kvpool import pack, unpack  # noqa: E402
from transfer import KVExpectation, TransferState, make_backend, start_transfer  # noqa: E402
from transfer.testing import EndpointActor, InProcessEndpoint, same_cache, synthetic_session  # noqa: E402


@pytest.fixture(scope="module")
def ray_gpus():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=torch.cuda.device_count(), object_store_memory=1 << 30,
             include_dashboard=False, log_to_driver=False)
    yield torch.cuda.device_count()
    ray.shutdown()


def _in_process_round_trip(backend_name: str, **config) -> tuple:
    source, target = InProcessEndpoint(), InProcessEndpoint()
    ckv = synthetic_session(1024, seed=2, ragged=True, device="cuda")
    source.transfer_offer("gpu", pack(ckv))
    status = start_transfer(make_backend(backend_name, **config), source, target, "gpu", expect=KVExpectation.like(ckv),
                                                        timeout_s=120).result(180)
    return status, ckv, target.transfer_take("gpu")


def test_nixl_moves_vram_to_vram():
    status, ckv, received = _in_process_round_trip("nixl")
    assert status.state == TransferState.DONE
    assert received.buffer.device.type == "cuda"
    assert same_cache(unpack(received), ckv)


def test_gloo_stages_cuda_payloads_through_host_memory():
    status, ckv, received = _in_process_round_trip("collective", transport="gloo")
    assert status.state == TransferState.DONE
    assert received.buffer.device.type == "cuda"  # landed on the host, then moved to the target's GPU
    assert same_cache(unpack(received), ckv)


def test_local_hands_over_in_process_without_copies():
    status, ckv, received = _in_process_round_trip("local")
    assert status.state == TransferState.DONE and same_cache(unpack(received), ckv)


def test_local_uses_cuda_ipc_between_actors_sharing_a_gpu(ray_gpus):
    spec = {"original_tokens": 1024, "seed": 4, "device": "cuda"}
    source = EndpointActor.options(num_gpus=0.5).remote()
    target = EndpointActor.options(num_gpus=0.5).remote()
    ray.get(source.offer_synthetic.remote("ipc", **spec), timeout=120)

    status = start_transfer(make_backend("local"), source, target, "ipc", timeout_s=120).result(180)

    assert status.state == TransferState.DONE
    assert ray.get(target.received_device.remote("ipc"), timeout=60).startswith("cuda")
    assert ray.get(target.received_equals_synthetic.remote("ipc", **spec), timeout=120)


def test_nixl_between_gpu_actors(ray_gpus):
    share = 1 if ray_gpus >= 2 else 0.5
    spec = {"original_tokens": 2048, "seed": 5, "device": "cuda"}
    source = EndpointActor.options(num_gpus=share).remote()
    target = EndpointActor.options(num_gpus=share).remote()
    ray.get(source.offer_synthetic.remote("vram", **spec), timeout=120)

    status = start_transfer(make_backend("nixl"), source, target, "vram", timeout_s=120).result(180)

    assert status.state == TransferState.DONE
    assert ray.get(target.received_equals_synthetic.remote("vram", **spec), timeout=120)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL between two actors needs two GPUs")
def test_nccl_moves_cuda_tensors_between_two_gpus(ray_gpus):
    spec = {"original_tokens": 2048, "seed": 6, "ragged": True, "device": "cuda"}
    source = EndpointActor.options(num_gpus=1).remote()
    target = EndpointActor.options(num_gpus=1).remote()
    ray.get(source.offer_synthetic.remote("nccl", **spec), timeout=120)
    backend = make_backend("collective")  # auto transport: NCCL when both endpoints are on CUDA

    first = start_transfer(backend, source, target, "nccl", timeout_s=120).result(180)
    second = start_transfer(backend, source, target, "nccl", timeout_s=120).result(180)  # reuses the pair

    assert first.state == second.state == TransferState.DONE
    assert ray.get(target.received_device.remote("nccl"), timeout=60).startswith("cuda")
    assert ray.get(target.received_equals_synthetic.remote("nccl", **spec), timeout=120)
