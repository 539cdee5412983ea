"""What a request may make the server load: the operator's press policy (``AppConfig.presses``).

A request names presses; it never chooses code or files. Two things need the operator's word:

- **custom presses by import path** (``package.module:ClassName``): only the paths listed in
  ``custom_allowlist`` exist. They are imported once, when the process starts
  (``install_press_policy``), and a bad entry stops the start-up with a message naming it. A request
  naming any other import path is a 422 - nothing is imported, and the message lists only the
  allowlisted names (never what happens to be installed).
- **press artifacts** (a file a press reads, e.g. a trained scorer's weights): a request gives a
  relative name, resolved only under ``artifact_dir`` (``artifact_path``, kvpool.safe_paths rules);
  without ``artifact_dir`` every artifact name is refused. A catalog entry lists which of its
  arguments are artifacts (``PressEntry.artifact_args``) and the builder resolves them here.

The policy is per process (ingress, prefill and decode actors each install it at start-up); the
default - nothing allowlisted, no artifact directory - is the safe one.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kvpress import BasePress
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deployments.engine.presses.catalog import PressEntry
from kvpool.errors import PressSpecError
from kvpool.safe_paths import UnsafeNameError, resolve_under


class PressPolicyConfig(BaseModel):
    """Operator settings; closed like every config (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid")

    custom_allowlist: list[str] = Field(
        default_factory=list, description="import paths 'package.module:ClassName' of BasePress subclasses "
        "that requests may name; imported at start-up")
    artifact_dir: Path | None = Field(
        default=None, description="directory press artifacts (e.g. trained scorer weights) are resolved "
        "under; None: requests cannot name artifacts")

    @field_validator("custom_allowlist")
    @classmethod
    def _import_paths(cls, paths: list[str]) -> list[str]:
        bad = [p for p in paths if p.count(":") != 1 or not all(p.partition(":")[::2])]
        if bad:
            raise ValueError(f"custom_allowlist entries must be 'package.module:ClassName', got {bad}")
        return paths


class _Installed:
    entries: dict[str, PressEntry] = {}
    artifact_dir: Path | None = None


def _import_press(path: str) -> PressEntry:
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PressSpecError(f"allowlisted custom press {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BasePress)):
        raise PressSpecError(f"allowlisted custom press {path!r} is not a kvpress BasePress subclass")
    return PressEntry(path, cls, bool(getattr(cls, "query_agnostic", False)),
                      per_head=bool(getattr(cls, "per_head", False)), summary="custom press (allowlisted)")


def install_press_policy(policy: PressPolicyConfig | dict | None) -> None:
    """Import every allowlisted press now and make the policy this process's; raises PressSpecError
    naming the first entry that cannot be imported or is not a press (start-up fails loudly)."""
    policy = PressPolicyConfig.model_validate(policy or {})
    entries = {path: _import_press(path) for path in policy.custom_allowlist}
    _Installed.entries, _Installed.artifact_dir = entries, policy.artifact_dir


def custom_entry(name: str) -> PressEntry:
    """The allowlisted press ``name``; PressSpecError (422) otherwise - without importing anything."""
    entry = _Installed.entries.get(name)
    if entry is None:
        allowed = ", ".join(sorted(_Installed.entries)) or "none"
        raise PressSpecError(f"custom press {name!r} is not allowlisted on this server (allowlisted: {allowed}); "
                             "custom presses are enabled by the operator in presses.custom_allowlist")
    return entry


def custom_entries() -> list[PressEntry]:
    """The installed allowlist (for ``GET /v1/presses``)."""
    return list(_Installed.entries.values())


def artifact_path(name: str, press: str = "press") -> Path:
    """Resolve a client-given artifact name under the configured ``artifact_dir``; PressSpecError
    (422) if artifacts are off, the name is unsafe or it does not exist there."""
    try:
        return resolve_under(_Installed.artifact_dir, name, what="press artifact")
    except UnsafeNameError as exc:
        raise PressSpecError(f"press {press!r}: {exc}") from exc
