"""transfer: moving packed CompressedKV between actors and nodes.

One interface (base.py), one file per backend (nixl, collective, object_store, local, fake),
a registry by name with ``auto`` (registry.py, auto.py), pollable tickets (ticket.py), the
endpoint mixin actors use (endpoint.py) and fault injection (faults.py). See README.md.
May import kvpool and ray core; never ray.serve.
"""

from transfer.base import BackendConfig, LentBuffer, ReceiveJob, Receiver, Route, Sender, SendJob, TransferBackend
from transfer.endpoint import TRANSFER_CONCURRENCY_GROUPS, TransferEndpoint, transfer_actor
from transfer.errors import (
    TransferAborted, TransferError, TransferFailedError, TransferUnavailableError,
    UnknownBackendError,
)
from transfer.expectation import KVExpectation
from transfer.faults import Fault, FaultKind, FaultSide
from transfer.protocol import start_transfer
from transfer.registry import AUTO_ORDER, availability, backend_class, backend_names, make_backend, register_backend
from transfer.states import EndpointId, FailureReason, TransferId, TransferState
from transfer.ticket import TicketStatus, TransferTicket

__all__ = [
    "AUTO_ORDER", "BackendConfig", "EndpointId", "FailureReason", "Fault", "FaultKind",
    "FaultSide", "KVExpectation", "LentBuffer", "ReceiveJob", "Receiver", "Route", "SendJob", "Sender",
    "TRANSFER_CONCURRENCY_GROUPS", "TicketStatus", "TransferAborted", "TransferBackend", "TransferEndpoint",
    "TransferError", "TransferFailedError", "TransferId", "TransferState", "TransferTicket",
    "TransferUnavailableError", "UnknownBackendError", "availability", "backend_class", "backend_names",
    "make_backend", "register_backend", "start_transfer", "transfer_actor",
]
