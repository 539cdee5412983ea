"""Stores by name (``ControlPlaneConfig.store``)."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Mapping

from control_plane.errors import UnknownPolicy
from control_plane.store.base import SessionStore
from control_plane.store.memory import MemorySessionStore
from control_plane.store.sqlite import SQLiteSessionStore

if TYPE_CHECKING:
    from control_plane.config import ControlPlaneConfig

STORES: Mapping[str, Callable[["ControlPlaneConfig"], SessionStore]] = MappingProxyType({
    "sqlite": lambda config: SQLiteSessionStore(config.store_path, synchronous=config.sqlite_synchronous,
                                                busy_timeout_s=config.sqlite_busy_timeout_s),
    "memory": lambda config: MemorySessionStore(),
})


def open_store(config: "ControlPlaneConfig") -> SessionStore:
    """Open the store ``config.store`` names; UnknownPolicy lists the registered names."""
    factory = STORES.get(config.store)
    if factory is None:
        raise UnknownPolicy("store", config.store, list(STORES))
    return factory(config)
