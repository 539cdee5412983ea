"""The vocabulary of a transfer: ids, ticket states and failure reasons."""

from __future__ import annotations

from enum import Enum
from typing import NewType

TransferId = NewType("TransferId", str)
"""Unique per attempt: a retry of the same session is a new transfer with a new id."""

EndpointId = NewType("EndpointId", str)
"""Unique per endpoint process incarnation (a restarted actor gets a new one)."""


class TransferState(str, Enum):
    """Lifecycle of a ticket: PENDING -> TRANSFERRING -> DONE | FAILED | ABORTED."""

    PENDING = "pending"            # created, endpoints not contacted yet
    TRANSFERRING = "transferring"  # the target accepted the manifest; bytes are moving
    DONE = "done"                  # verified and handed to the target's import hook
    FAILED = "failed"              # see TicketStatus.reason; nothing was imported on the target
    ABORTED = "aborted"            # the caller aborted before the target committed

    @property
    def terminal(self) -> bool:
        return self in (TransferState.DONE, TransferState.FAILED, TransferState.ABORTED)


class FailureReason(str, Enum):
    """Why a ticket FAILED. Every reason leaves the target without the cache (no partial import).

    What a caller should do is the same for all of them: retry (new transfer id) or fall back to
    re-prefilling on the target; the reason says which is likely to help.
    """

    TIMEOUT = "timeout"                      # the deadline passed before the target verified the data
    CHECKSUM_MISMATCH = "checksum_mismatch"  # bytes arrived but were corrupted in transit
    MANIFEST_MISMATCH = "manifest_mismatch"  # the cache does not fit the target (model id / layout)
    DATA_LOST = "data_lost"                  # the source sent, but the bytes never (fully) arrived
    PEER_DIED = "peer_died"                  # the source or target process died mid-transfer
    CAPACITY = "capacity"                    # the target had no room (pool budget, registered memory)
    EXPORT_FAILED = "export_failed"          # the source has no cache under that key
    IMPORT_FAILED = "import_failed"          # the target's import hook raised after verification
    BACKEND_ERROR = "backend_error"          # the transport itself reported an error
    UNAVAILABLE = "unavailable"              # the backend cannot connect these two endpoints

    @property
    def retryable(self) -> bool:
        """True when a retry of the same transfer can succeed (the data itself is fine)."""
        return self in (FailureReason.TIMEOUT, FailureReason.CHECKSUM_MISMATCH, FailureReason.DATA_LOST,
                        FailureReason.BACKEND_ERROR)
