"""Press registry: PressSpec -> kvpress press, with the catalog of presses kvfleet serves."""

from deployments.engine.presses.builder import ResolvedPress, describe_presses, lookup, resolve
from deployments.engine.presses.catalog import CATALOG, PressEntry, valid_names

__all__ = ["CATALOG", "PressEntry", "ResolvedPress", "describe_presses", "lookup", "resolve", "valid_names"]
