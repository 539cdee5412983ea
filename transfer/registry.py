"""Transfer backends by name.

``make_backend("nixl")`` builds one; an unknown name raises UnknownBackendError listing the valid
ones. Backends are registered as import paths, so a process that never uses NIXL never imports
it. ``auto`` picks, per transfer, the first backend in AUTO_ORDER that can connect the two
endpoints (see auto.py for why this order).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from transfer.errors import UnknownBackendError

_BACKENDS: dict[str, str] = {
    "nixl": "transfer.nixl:NixlBackend",
    "collective": "transfer.collective:CollectiveBackend",
    "object_store": "transfer.object_store:ObjectStoreBackend",
    "local": "transfer.local:LocalBackend",
    "fake": "transfer.fake:FakeBackend",
    "auto": "transfer.auto:AutoBackend",
}

AUTO_ORDER: tuple[str, ...] = ("local", "nixl", "collective", "object_store")
"""Preference of ``auto``: same-node handoff, then RDMA-capable NIXL, then NCCL/gloo, then the object store."""

_AVAILABILITY: dict[str, str | None] = {}
_AVAILABILITY_LOCK = threading.Lock()


def register_backend(name: str, target: str | type) -> None:
    """Register a backend class (or its ``"module:Class"`` path) under ``name``."""
    _BACKENDS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def backend_class(name: str) -> Any:
    """The TransferBackend subclass registered as ``name``."""
    path = _BACKENDS.get(name)
    if path is None:
        raise UnknownBackendError(f"unknown transfer backend {name!r}; valid names: {', '.join(backend_names())}")
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_backend(name: str, config: Any = None, **overrides: Any) -> Any:
    """Build the backend registered as ``name`` with its Config (``config`` dict/model + overrides)."""
    return backend_class(name)(config, **overrides)


def availability(name: str) -> str | None:
    """None if backend ``name`` can run in this process, else why not (cached per process)."""
    with _AVAILABILITY_LOCK:
        if name not in _AVAILABILITY:
            try:
                _AVAILABILITY[name] = backend_class(name).availability()
            except ImportError as error:
                _AVAILABILITY[name] = f"cannot import: {error}"
        return _AVAILABILITY[name]


def availability_report() -> dict[str, str | None]:
    """``availability`` of every concrete backend (``auto`` excluded)."""
    return {name: availability(name) for name in backend_names() if name != "auto"}
