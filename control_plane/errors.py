"""Typed errors raised by the control plane.

The HTTP status the serving layer should map each one to is named in its docstring.
"""

from __future__ import annotations

from kvpool.errors import CapacityError, KVFleetError, UnknownNameError


class ControlPlaneError(KVFleetError):
    """Base class of every error the control plane raises on purpose."""


class InvalidTransition(ControlPlaneError, ValueError):
    """A session was asked to move to a state its current state does not allow (HTTP 409)."""


class UnknownSession(ControlPlaneError, LookupError):
    """No live session has this id (HTTP 404)."""


class SessionNotReady(ControlPlaneError):
    """The session exists but cannot answer right now, e.g. it is loading or rebuilding (HTTP 409).
    ``retry_after_s``: when set, the seconds a client should wait (the HTTP ``Retry-After``)."""

    retry_after_s: int | None = None


class UnknownReplica(ControlPlaneError, LookupError):
    """No replica with this id has ever sent a heartbeat (HTTP 404 on admin calls)."""


class NoReplicaAvailable(ControlPlaneError):
    """Every replica is dead, draining or excluded, so nothing can be placed (HTTP 503)."""


class InsufficientCapacity(ControlPlaneError, CapacityError):
    """Replicas are up, but none has room for the requested bytes (HTTP 429)."""


class UnknownPolicy(ControlPlaneError, UnknownNameError):
    """A placement policy, victim order or store name that is not registered.

    ``UnknownPolicy(kind, name, valid)`` says ``unknown <kind> '<name>'; valid names: ...``.
    """


class InvalidMigration(ControlPlaneError, ValueError):
    """A requested move makes no sense (same replica, target dead, session not movable) (HTTP 409)."""


class UnknownMigrationJob(ControlPlaneError, LookupError):
    """No migration job with this id is in flight."""


class StaleRecord(ControlPlaneError):
    """A write carried a version that is not newer than the stored one (a concurrent writer won)."""


class StoreError(ControlPlaneError):
    """The durable store cannot be opened or does not hold what this version of kvfleet expects."""


class UnknownAdminEvent(ControlPlaneError, LookupError):
    """No admin event has this id (HTTP 404)."""


class PoolEventError(ControlPlaneError, ValueError):
    """A KV pool event lacks a field the control plane needs or names an unknown kind or tier."""
