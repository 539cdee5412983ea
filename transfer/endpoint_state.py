"""What an endpoint remembers about the transfers it takes part in (see endpoint.py)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from kvpool.packing import PackedKV
from transfer.base import LentBuffer, ReceiveJob, Receiver, Sender
from transfer.faults import Fault
from transfer.states import EndpointId


@dataclass
class Outgoing:
    """Source side of one transfer: the pack being sent, until release."""

    packed: PackedKV
    deadline: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    idle: threading.Event = field(default_factory=threading.Event)
    sender: Sender | None = None

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass
class Incoming:
    """Target side of one transfer, from prepare until commit or abort."""

    key: str
    manifest: dict[str, Any]
    receiver: Receiver
    job: ReceiveJob
    fault: Fault | None
    lent: LentBuffer | None = None


class EndpointState:
    """Per endpoint object: its id, offered/received packs, transfers in flight, backend roles."""

    def __init__(self) -> None:
        self.endpoint_id = EndpointId(f"ep-{uuid.uuid4().hex[:12]}")
        self.lock = threading.Lock()
        self.outbox: dict[str, PackedKV] = {}
        self.inbox: dict[str, PackedKV] = {}
        self.outgoing: dict[str, Outgoing] = {}
        self.incoming: dict[str, Incoming] = {}
        self.roles: dict[tuple[str, str, str], Sender | Receiver] = {}
