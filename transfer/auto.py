"""auto: per transfer, the first backend in ``order`` that can connect the two endpoints.

Default order (registry.AUTO_ORDER) and why:

1. ``local``        - same node: a handoff through shared memory / CUDA IPC beats any wire.
2. ``nixl``         - across nodes: one-sided RDMA (UCX) with registered, reused buffers.
3. ``collective``   - across nodes without NIXL: NCCL between GPUs, gloo (TCP) on CPU.
4. ``object_store`` - always there when Ray is: slowest, but needs nothing else.

Each candidate's ``plan`` decides from both endpoints' ``transfer_info`` (node, process, device,
which backends their processes can run); the ticket's ``backend`` shows which one was chosen.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from transfer.base import BackendConfig, Route, TransferBackend
from transfer.errors import TransferUnavailableError, UnknownBackendError
from transfer.registry import AUTO_ORDER, backend_class, backend_names


class AutoConfig(BackendConfig):
    """``order``: candidates in preference order. ``backends``: per-candidate config overrides."""

    order: tuple[str, ...] = AUTO_ORDER
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AutoBackend(TransferBackend):
    name = "auto"
    Config = AutoConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        unknown = [name for name in (*self.config.order, *self.config.backends) if name not in backend_names()
                   or name == "auto"]
        if unknown:
            raise UnknownBackendError(f"auto cannot use {unknown}; valid names: "
                                      f"{', '.join(n for n in backend_names() if n != 'auto')}")
        self._candidates = [backend_class(name)(self.config.backends.get(name)) for name in self.config.order]

    def plan(self, source: dict[str, Any], target: dict[str, Any]) -> Route:
        reasons = []
        for candidate in self._candidates:
            try:
                return candidate.plan(source, target)
            except TransferUnavailableError as error:
                reasons.append(f"{candidate.name}: {error}")
        raise TransferUnavailableError("no backend can connect these endpoints: " + " | ".join(reasons))
