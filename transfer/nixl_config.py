"""NixlConfig: settings of the NIXL backend (``transfer.nixl``), apart from the backend and its
runtime (``transfer.nixl_runtime``) so that both import it and neither imports the other back."""

from __future__ import annotations

from pydantic import Field

from transfer.base import BackendConfig
from transfer.buffer_pool import MIB


class NixlConfig(BackendConfig):
    """``chunk_bytes``: size of one WRITE (copy/wire overlap, progress, abort granularity).
    ``pool_max_bytes``: registered memory per device and process."""

    ucx_backend: str = "UCX"
    chunk_bytes: int = Field(default=16 * MIB, gt=0)
    pool_max_bytes: int = Field(default=4 << 30, gt=0)
    min_buffer_bytes: int = Field(default=MIB, gt=0)
