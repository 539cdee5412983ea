"""Raw baselines for benchmarks/transfer_throughput.py: the same bytes moved without kvfleet.

``RawPeer`` is a Ray actor that times what the transfer backends build on, minus everything
they add (manifests, checksums, tickets, pooling policy):

- memcpy: ``dst.copy_(src)`` between two pre-faulted buffers in one process;
- NIXL write: one WRITE of registered memory to a remote agent, until it is DONE locally;
- gloo: one send/recv on an already formed two-rank group (timed by the caller);
- object store: ``ray.put`` on one actor, ``ray.get`` on another (timed by the caller).
"""

from __future__ import annotations

import time
from typing import Any

import ray
import torch

from transfer import pair_groups


def _filled(nbytes: int) -> torch.Tensor:
    tensor = torch.empty(nbytes, dtype=torch.uint8)
    tensor.fill_(7)  # fault the pages in: baselines measure copies, not page faults
    return tensor


@ray.remote(num_cpus=0)
class RawPeer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._agent: Any = None
        self._buffers: dict[str, torch.Tensor] = {}
        self._registered: list[Any] = []
        self._gloo_pair: Any = None

    # ---- memcpy ------------------------------------------------------------------------------
    def memcpy_s(self, nbytes: int, repeats: int) -> list[float]:
        src, dst = _filled(nbytes), _filled(nbytes)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dst.copy_(src)
            times.append(time.perf_counter() - start)
        return times

    # ---- NIXL --------------------------------------------------------------------------------
    def nixl_prepare(self, nbytes: int) -> dict[str, Any]:
        """Register a receive buffer of ``nbytes``; return what a writer needs."""
        agent = self._nixl()
        dst = self._buffers["dst"] = _filled(nbytes)
        self._registered.append(agent.register_memory(dst))
        return {"agent": self.name, "metadata": agent.get_agent_metadata(), "address": dst.data_ptr()}

    def nixl_write_s(self, target: dict[str, Any], nbytes: int, repeats: int) -> list[float]:
        agent = self._nixl()
        src = self._buffers["src"] = _filled(nbytes)
        self._registered.append(agent.register_memory(src))
        agent.add_remote_agent(target["metadata"])
        local = agent.get_xfer_descs([(src.data_ptr(), nbytes, 0)], "DRAM")
        remote = agent.get_xfer_descs([(target["address"], nbytes, 0)], "DRAM")
        times = []
        for index in range(repeats):
            start = time.perf_counter()
            handle = agent.initialize_xfer("WRITE", local, remote, target["agent"], f"raw{index}".encode())
            state = agent.transfer(handle)
            deadline = time.monotonic() + 120
            while state == "PROC" and time.monotonic() < deadline:
                state = agent.check_xfer_state(handle)
            times.append(time.perf_counter() - start)
            handle.release()
            if state != "DONE":
                raise RuntimeError(f"raw NIXL write ended {state}")
        return times

    def nixl_release(self) -> None:
        for registration in self._registered:
            self._agent.deregister_memory(registration)
        self._registered.clear()
        self._buffers.clear()

    def _nixl(self) -> Any:
        if self._agent is None:
            from nixl._api import nixl_agent, nixl_agent_config

            self._agent = nixl_agent(self.name, nixl_agent_config(backends=["UCX"]))
        return self._agent

    # ---- gloo --------------------------------------------------------------------------------
    def gloo_host(self, peer: str) -> dict[str, Any]:
        ip = ray.util.get_node_ip_address()
        pair, address, created = pair_groups.host(self.name, peer, "gloo", ip, 60.0)
        self._gloo_pair = pair
        if created:
            import threading

            threading.Thread(target=pair_groups.build, args=(pair, None, ip, 60.0), daemon=True).start()
        return {"pair_id": pair.pair_id, "store": list(address), "formed": pair.formed.is_set()}

    def gloo_join(self, peer: str, hosted: dict[str, Any]) -> None:
        self._gloo_pair = pair_groups.join(self.name, peer, "gloo", hosted["pair_id"], tuple(hosted["store"]),
                                           ray.util.get_node_ip_address(), 60.0, host_formed=hosted["formed"])

    def gloo_send(self, peer: str, nbytes: int, tag: int) -> None:
        pair = self._gloo_pair
        data = self._cached(f"gloo{nbytes}", nbytes)
        pair.group.send([data], pair.peer_rank, tag).wait()

    def gloo_recv(self, peer: str, nbytes: int, tag: int) -> None:
        pair = self._gloo_pair
        pair.wait_formed(60)
        data = self._cached(f"gloo{nbytes}", nbytes)
        pair.group.recv([data], pair.peer_rank, tag).wait()

    def _cached(self, key: str, nbytes: int) -> torch.Tensor:
        if key not in self._buffers:  # allocate and fault in once per size, like a pool would
            self._buffers[key] = _filled(nbytes)
        return self._buffers[key]

    # ---- object store ------------------------------------------------------------------------
    def put(self, nbytes: int) -> list[Any]:
        return [ray.put(self._cached(f"put{nbytes}", nbytes).numpy())]

    def get(self, refs: list[Any]) -> int:
        return int(ray.get(refs[0]).size)

    def forget(self) -> None:
        self._buffers.clear()


def raw_gloo_s(a: Any, b: Any, nbytes: int, repeats: int) -> list[float]:
    """Send ``nbytes`` a -> b on a formed gloo pair; time each send/recv pair from the driver."""
    hosted = ray.get(b.gloo_host.remote("raw-a"), timeout=120)
    ray.get(a.gloo_join.remote("raw-b", hosted), timeout=120)
    times = []
    for index in range(repeats):
        start = time.perf_counter()
        ray.get([b.gloo_recv.remote("raw-a", nbytes, index), a.gloo_send.remote("raw-b", nbytes, index)], timeout=300)
        times.append(time.perf_counter() - start)
    return times


def raw_object_store_s(a: Any, b: Any, nbytes: int, repeats: int) -> list[float]:
    """``ray.put`` on a, ``ray.get`` on b, timed from the driver (the same calls object_store makes)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        refs = ray.get(a.put.remote(nbytes), timeout=300)
        ray.get(b.get.remote(refs), timeout=300)
        times.append(time.perf_counter() - start)
        del refs
    return times
