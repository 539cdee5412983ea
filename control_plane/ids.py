"""Identifier types that must not be mixed up, and how new ones are minted."""

from __future__ import annotations

import uuid
from typing import NewType

from kvpool.handles import SessionId  # a session's id as clients see it (``sess_<hex>``); kvpool tags entries with it

ReplicaId = NewType("ReplicaId", str)
"""A serving replica (one KV pool); the Serve shell uses the replica's actor name."""

NodeId = NewType("NodeId", str)
"""A machine (Ray node id); replicas on one node share its disk tier."""

AdminEventId = NewType("AdminEventId", str)
"""An admin action's pollable event id (``evt_<hex>``)."""

JobId = NewType("JobId", str)
"""A migration job's id (``mig_<hex>``)."""

ANONYMOUS_OWNER = "anonymous"
"""Owner recorded for sessions created without an API key."""


def new_session_id() -> SessionId:
    """Return a fresh, unguessable session id."""
    return SessionId(f"sess_{uuid.uuid4().hex}")


def new_admin_event_id() -> AdminEventId:
    """Return a fresh admin event id."""
    return AdminEventId(f"evt_{uuid.uuid4().hex}")


def new_job_id() -> JobId:
    """Return a fresh migration job id."""
    return JobId(f"mig_{uuid.uuid4().hex}")
