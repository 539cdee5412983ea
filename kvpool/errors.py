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


class UnknownHandleError(KVFleetError, KeyError):
    """A pool handle is not (or no longer) held: never stored, freed, or evicted (HTTP 404).

    ``reason`` is ``"unknown"``, ``"freed"`` or ``"evicted"``; for the last two the pool still
    remembers (for a bounded while) what happened, so the caller can tell a lost cache, which it
    must rebuild by re-prefilling, from a programming error.
    """

    def __init__(self, message: str, reason: str = "unknown") -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownNameError(KVFleetError, ValueError):
    """A registry (eviction policies, codecs ...) was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}")
        self.kind, self.name, self.valid = kind, name, sorted(valid)


class CodecError(KVFleetError, ValueError):
    """A storage codec cannot encode/decode this cache here (unsupported dtype, wrong codec)."""


class QueryAwareCacheError(KVFleetError, ValueError):
    """A query-aware cache was offered to the prefix index, which only shares query-agnostic caches."""


class RecompressError(KVFleetError):
    """Re-compression was asked for but is not configured, or the recompressor broke its contract."""


class PoolConfigError(KVFleetError, ValueError):
    """A KVPool cannot start with this configuration here (e.g. a CUDA tier on a machine without CUDA)."""
