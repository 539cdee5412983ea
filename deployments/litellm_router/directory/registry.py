"""Directory stores by name: ``make_directory(DirectoryConfig)``; an unknown name lists the valid ones."""

from __future__ import annotations

from deployments.litellm_router.config import DirectoryConfig
from deployments.litellm_router.directory.base import SessionDirectory
from deployments.litellm_router.directory.memory import MemoryDirectory
from deployments.litellm_router.directory.sqlite import SqliteDirectory
from deployments.litellm_router.errors import RouterConfigError

STORES: dict[str, type[SessionDirectory]] = {"memory": MemoryDirectory, "sqlite": SqliteDirectory}


def make_directory(config: DirectoryConfig) -> SessionDirectory:
    if config.store not in STORES:
        raise RouterConfigError(f"kvfleet_router.directory.store {config.store!r} is unknown; "
                                f"valid stores: {sorted(STORES)}")
    return STORES[config.store](config.path)
