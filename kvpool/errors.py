"""Typed errors raised by kvpool. The serving layer maps each to an HTTP status."""


class KVFleetError(Exception):
    """Base class of every error kvfleet raises on purpose."""


class PressSpecError(KVFleetError, ValueError):
    """A press spec names an unknown press, a bad ratio or a bad kwarg (HTTP 422)."""


class ChecksumError(KVFleetError, ValueError):
    """A packed CompressedKV buffer does not match its manifest's checksum or layout."""


class CacheLayoutError(KVFleetError, ValueError):
    """A CompressedKV does not fit the model or the manifest it is paired with."""


class CapacityError(KVFleetError):
    """The pool cannot make room without exceeding a budget (HTTP 429/507)."""
