"""Typed transfer errors. They pickle cleanly so they cross Ray actor boundaries intact."""

from __future__ import annotations

from kvpool.errors import KVFleetError
from transfer.states import FailureReason, TransferState


class TransferError(KVFleetError):
    """A transfer step failed for ``reason``; raised inside endpoints and turned into a FAILED ticket."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = FailureReason(reason)
        self.detail = message

    def __reduce__(self):  # keep (reason, message) across pickling (Ray task errors)
        return (type(self), (self.reason, self.detail))


class TransferAborted(KVFleetError):
    """Raised inside an endpoint when the transfer it works on was aborted or released."""

    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id} was aborted")
        self.transfer_id = transfer_id

    def __reduce__(self):
        return (type(self), (self.transfer_id,))


class TransferFailedError(KVFleetError):
    """``TransferTicket.result()`` of a ticket that ended FAILED or ABORTED.

    ``state`` is FAILED or ABORTED; ``reason`` is set for FAILED. Retry with a new transfer id,
    or fall back to re-prefilling the session on the target.
    """

    def __init__(self, transfer_id: str, state: TransferState, reason: FailureReason | None, message: str) -> None:
        what = reason.value if reason else state.value
        super().__init__(f"transfer {transfer_id} {state.value} ({what}): {message}")
        self.transfer_id = transfer_id
        self.state = state
        self.reason = reason
        self.detail = message


class UnknownBackendError(KVFleetError, ValueError):
    """A backend name that the registry does not know."""


class TransferUnavailableError(KVFleetError):
    """The backend cannot move data between these two endpoints (not installed, wrong topology).

    Pick another backend (``auto`` does this for you) or fix the deployment as the message says.
    """


class SimulatedPeerDeath(Exception):
    """Raised by an in-process endpoint (no Ray) where a Ray actor would ``os._exit``."""
