"""Press registry: PressSpec -> kvpress press, with the catalog of presses kvfleet serves."""

from deployments.engine.presses.builder import ResolvedPress, describe_presses, lookup, resolve
from deployments.engine.presses.catalog import CATALOG, PressEntry, valid_names
from deployments.engine.presses.policy import PressPolicyConfig, artifact_path, install_press_policy

__all__ = ["CATALOG", "PressEntry", "PressPolicyConfig", "ResolvedPress", "artifact_path", "describe_presses",
           "install_press_policy", "lookup", "resolve", "valid_names"]
