"""Settings of the kvfleet LiteLLM router, and reading them from a LiteLLM config file.

One YAML file serves both ``litellm --config configs/litellm.yaml`` and
``KvfleetRouterClient.from_config("configs/litellm.yaml")``: LiteLLM reads ``model_list`` and
``router_settings``; kvfleet reads its own top-level ``kvfleet_router`` block (LiteLLM ignores it)
into ``KvfleetRouterConfig`` (closed: a typo is an error naming the field).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from deployments.common.schema_base import ClosedModel
from deployments.litellm_router.errors import RouterConfigError


class DirectoryConfig(ClosedModel):
    """Where the router remembers sessions: {session id -> home deployment, copies, context, press}.

    ``sqlite`` (default) survives a router restart and is shared by the proxy's worker processes
    on one machine; ``memory`` lives as long as the process.
    """

    store: str = Field(default="sqlite", description="registered directory store: sqlite or memory")
    path: str = Field(default="/tmp/kvfleet/litellm-sessions.sqlite3", description="sqlite file")


class KvfleetRouterConfig(ClosedModel):
    """Session affinity, failover and session creation over several kvfleet deployments."""

    model_groups: list[str] | None = Field(
        default=None, description="LiteLLM model_names served by kvfleet deployments (None: every group)")
    directory: DirectoryConfig = DirectoryConfig()
    health_ttl_s: float = Field(default=2.0, ge=0, description="reuse a deployment's /health answer this long")
    health_timeout_s: float = Field(default=3.0, gt=0, description="timeout of one /health probe")
    session_timeout_s: float = Field(default=600.0, gt=0,
                                     description="timeout of creating (or rebuilding) one session")
    lookup_timeout_s: float = Field(default=10.0, gt=0, description="timeout of GET/DELETE on a session")

    def serves(self, model_group: str) -> bool:
        return self.model_groups is None or model_group in self.model_groups


def read_litellm_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed YAML file; raises RouterConfigError when it is missing or has no model_list."""
    file = Path(path)
    if not file.is_file():
        raise RouterConfigError(f"LiteLLM config {file} does not exist; pass the path of configs/litellm.yaml")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list) or not data["model_list"]:
        raise RouterConfigError(f"{file}: needs a non-empty 'model_list' of kvfleet deployments")
    return data


def kvfleet_router_config(data: dict[str, Any]) -> KvfleetRouterConfig:
    """The ``kvfleet_router`` block of a parsed LiteLLM config (defaults when absent)."""
    return KvfleetRouterConfig.model_validate(data.get("kvfleet_router") or {})


def resolve_secret(value: Any) -> Any:
    """LiteLLM's ``os.environ/NAME`` reference -> the variable's value; other values unchanged."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in os.environ:
            raise RouterConfigError(f"the config refers to environment variable {name!r}, which is not set")
        return os.environ[name]
    return value
