"""TransferEndpoint: the mixin that lets an actor (or a plain object) send and receive caches.

Mix it into a Ray actor and declare its concurrency groups (transfers must make progress while
the actor decodes, and an abort must get through while a send blocks)::

    @transfer_actor(num_cpus=1)                    # = ray.remote(concurrency_groups=...)
    class DecodeActor(TransferEndpoint):
        def transfer_export(self, key): return pack(self.pool.get(key))       # source hook
        def transfer_import(self, key, packed): self.pool.put(key, unpack(packed))  # target hook

Then the control plane: ``ticket = start_transfer(backend, source_handle, target_handle, key)``.
Without overriding the hooks an endpoint serves ``transfer_offer``-ed packs and collects received
ones for ``transfer_take``. The ``transfer_*`` remote methods below are the protocol of base.py;
callers never call them directly.

Threading: hooks run on the endpoint's transfer threads, not the actor's main thread; a hook that
touches actor state shared with other methods must lock it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

import ray
import torch

from kvpool.errors import CapacityError, ChecksumError
from kvpool.packing import PackedKV, verify
from transfer import registry
from transfer.base import ReceiveJob, SendJob
from transfer.endpoint_state import EndpointState, Incoming, Outgoing
from transfer.errors import SimulatedPeerDeath, TransferAborted, TransferError
from transfer.expectation import KVExpectation
from transfer.faults import Fault, FaultKind, FaultSide, corrupted_copy, sleep_unless_cancelled
from transfer.process import PROCESS_TOKEN
from transfer.states import FailureReason, TransferId

TRANSFER_CONCURRENCY_GROUPS = {"transfer_io": 8, "transfer_ctl": 8}
"""Concurrency groups an endpoint actor must declare (``transfer_actor`` does it for you)."""


_STALE_AFTER_S = 60.0  # entries this long past their deadline were abandoned by a dead orchestrator
_STATE_LOCK = threading.Lock()


def transfer_actor(cls: type | None = None, **options: Any) -> Any:
    """``ray.remote`` for endpoint actors: adds TRANSFER_CONCURRENCY_GROUPS to ``options``."""
    groups = {**TRANSFER_CONCURRENCY_GROUPS, **options.pop("concurrency_groups", {})}
    decorate = ray.remote(concurrency_groups=groups, **options)
    return decorate(cls) if cls is not None else decorate


def _in_ray_actor() -> bool:
    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


class TransferEndpoint:
    """Mixin: source and target side of every transfer backend. See the module docstring."""

    # ---- hooks: override these ---------------------------------------------------------------
    def transfer_export(self, key: str) -> PackedKV:
        """The packed cache to send for ``key`` (default: what ``transfer_offer`` stored).

        Raise KeyError if there is none. Runs once per transfer, on a transfer thread.
        """
        with self._transfer_state().lock:
            return self._transfer_state().outbox[key]

    def transfer_import(self, key: str, packed: PackedKV) -> None:
        """Take a verified cache. ``packed.buffer`` is lent: copy or unpack it before returning.

        Default: keep a copy for ``transfer_take(key)``. An exception here fails the ticket with
        IMPORT_FAILED.
        """
        copy = PackedKV(packed.buffer.clone(), packed.manifest)
        with self._transfer_state().lock:
            self._transfer_state().inbox[key] = copy

    def transfer_admit(self, key: str, manifest: dict[str, Any]) -> None:
        """Called before any byte moves; raise kvpool.CapacityError to refuse (ticket: CAPACITY)."""

    def transfer_device(self) -> str:
        """Where received caches should land: the current CUDA device if there is one, else cpu."""
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        return "cpu"

    # ---- local helpers for the default hooks -------------------------------------------------
    def transfer_offer(self, key: str, packed: PackedKV) -> None:
        """Make ``packed`` available to send under ``key`` (default export hook)."""
        with self._transfer_state().lock:
            self._transfer_state().outbox[key] = packed

    def transfer_take(self, key: str) -> PackedKV | None:
        """Remove and return what was received under ``key`` (default import hook), or None."""
        with self._transfer_state().lock:
            return self._transfer_state().inbox.pop(key, None)

    # ---- protocol: control (quick) -----------------------------------------------------------
    @ray.method(concurrency_group="transfer_ctl")
    def transfer_info(self) -> dict[str, Any]:
        """Who and where this endpoint is, and which backends its process can run."""
        node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else f"host:{socket.gethostname()}"
        return {
            "endpoint_id": self._transfer_state().endpoint_id,
            "node_id": node_id,
            "process": PROCESS_TOKEN,
            "pid": os.getpid(),
            "ip": ray.util.get_node_ip_address() if ray.is_initialized() else "127.0.0.1",
            "device": self.transfer_device(),
            "in_ray": ray.is_initialized(),
            "backends": registry.availability_report(),
        }

    @ray.method(concurrency_group="transfer_ctl")
    def transfer_stats(self) -> dict[str, Any]:
        """Counters of this endpoint's backend roles, as ``{"<backend>.<sender|receiver>": {...}}``."""
        with self._transfer_state().lock:
            roles = dict(self._transfer_state().roles)
        return {f"{name}.{kind}": role.stats() for (name, _, kind), role in roles.items()}

    @ray.method(concurrency_group="transfer_ctl")
    def transfer_describe(self, transfer_id: TransferId, key: str, timeout_s: float) -> dict[str, Any]:
        """Export ``key`` for this transfer and return its manifest (holds the pack until release)."""
        state = self._transfer_state()
        self._transfer_sweep()
        try:
            packed = self.transfer_export(key)
        except KeyError:
            raise TransferError(FailureReason.EXPORT_FAILED, f"source endpoint {state.endpoint_id} has no cache "
                                f"under key {key!r}; export (offer) it before starting the transfer") from None
        with state.lock:
            state.outgoing[transfer_id] = Outgoing(packed, time.monotonic() + timeout_s + _STALE_AFTER_S)
        return packed.manifest

    @ray.method(concurrency_group="transfer_ctl")
    def transfer_prepare(self, backend: str, config: dict[str, Any], transfer_id: TransferId, key: str,
                         manifest: dict[str, Any], expect: dict[str, Any] | None, fault: dict[str, Any] | None,
                         source: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Check the manifest, reserve room, return the backend's descriptor for the source."""
        self._transfer_sweep()
        if expect is not None:
            KVExpectation(**expect).check(manifest)
        try:
            self.transfer_admit(key, manifest)
        except CapacityError as error:
            raise TransferError(FailureReason.CAPACITY, str(error)) from None
        receiver = self._transfer_role(backend, config, "receiver")
        job = ReceiveJob(transfer_id, int(manifest["nbytes"]), torch.device(self.transfer_device()), source,
                         self.transfer_info(), time.monotonic() + timeout_s)
        try:
            descriptor = receiver.prepare(job)
        except CapacityError as error:
            raise TransferError(FailureReason.CAPACITY, str(error)) from None
        except (TransferError, TransferAborted):
            raise
        except Exception as error:
            raise TransferError(FailureReason.BACKEND_ERROR, f"{backend} prepare failed: {error!r}") from error
        with self._transfer_state().lock:
            self._transfer_state().incoming[transfer_id] = Incoming(key, manifest, receiver, job,
                                                                     Fault(**fault) if fault else None)
        return descriptor

    @ray.method(concurrency_group="transfer_ctl")
    def transfer_release(self, transfer_id: TransferId) -> None:
        """Source side: stop sending (if still at it) and free what this transfer held."""
        with self._transfer_state().lock:
            outgoing = self._transfer_state().outgoing.pop(transfer_id, None)
        if outgoing is None:
            return
        outgoing.cancelled.set()
        if not outgoing.idle.wait(timeout=30.0):
            raise TimeoutError(f"send of {transfer_id} did not stop within 30 s")
        if outgoing.sender is not None:
            outgoing.sender.release(transfer_id)

    @ray.method(concurrency_group="transfer_ctl")
    def transfer_abort(self, transfer_id: TransferId, source_quiesced: bool = True) -> None:
        """Target side: drop this transfer; never imports it. Idempotent."""
        with self._transfer_state().lock:
            incoming = self._transfer_state().incoming.pop(transfer_id, None)
        if incoming is None:
            return
        incoming.job.cancelled.set()
        if incoming.lent is not None:
            incoming.lent.release()
        incoming.receiver.abort(transfer_id, source_quiesced)

    # ---- protocol: data (may block for the whole transfer) -----------------------------------
    @ray.method(concurrency_group="transfer_io")
    def transfer_send(self, backend: str, config: dict[str, Any], transfer_id: TransferId,
                      descriptor: dict[str, Any], fault: dict[str, Any] | None, target: dict[str, Any],
                      timeout_s: float) -> dict[str, Any]:
        """Source side: move the described pack to the target; return the backend's report."""
        with self._transfer_state().lock:
            outgoing = self._transfer_state().outgoing.get(transfer_id)
        if outgoing is None:
            raise TransferAborted(transfer_id)
        outgoing.idle.clear()
        try:
            return self._transfer_send(outgoing, backend, config, transfer_id, descriptor,
                                       Fault(**fault) if fault else None, target, timeout_s)
        finally:
            outgoing.idle.set()

    @ray.method(concurrency_group="transfer_io")
    def transfer_finish(self, transfer_id: TransferId, report: dict[str, Any], timeout_s: float,
                        grace_s: float) -> int:
        """Target side: wait for the bytes, verify checksum and size; stage them for commit."""
        incoming = self._transfer_incoming(transfer_id)
        if incoming.fault is not None and incoming.fault.hits(FaultKind.DIE, FaultSide.TARGET):
            self._transfer_die()
        now = time.monotonic()
        incoming.job.deadline = min(incoming.job.deadline, now + timeout_s)
        try:
            lent = incoming.receiver.finish(incoming.job, report, min(incoming.job.deadline, now + grace_s))
        except (TransferError, TransferAborted):
            raise
        except Exception as error:
            raise TransferError(FailureReason.BACKEND_ERROR, f"receive failed: {error!r}") from error
        try:
            verify(PackedKV(lent.buffer, incoming.manifest))
        except ChecksumError as error:
            lent.release()
            raise TransferError(FailureReason.CHECKSUM_MISMATCH, f"{error}; nothing was imported") from None
        with self._transfer_state().lock:
            if incoming.job.cancelled.is_set():
                lent.release()
                raise TransferAborted(transfer_id)
            incoming.lent = lent
        return int(lent.buffer.numel())

    @ray.method(concurrency_group="transfer_io")
    def transfer_commit(self, transfer_id: TransferId) -> None:
        """Target side: hand the verified cache to ``transfer_import``; then free transfer memory."""
        with self._transfer_state().lock:
            incoming = self._transfer_state().incoming.pop(transfer_id, None)
        if incoming is None or incoming.lent is None:
            raise TransferAborted(transfer_id)
        try:
            self.transfer_import(incoming.key, PackedKV(incoming.lent.buffer, incoming.manifest))
        except Exception as error:
            raise TransferError(FailureReason.IMPORT_FAILED, f"import hook raised {error!r}") from error
        finally:
            incoming.lent.release()
            incoming.receiver.abort(transfer_id, source_quiesced=True)

    # ---- internals ---------------------------------------------------------------------------
    def _transfer_send(self, outgoing: Outgoing, backend: str, config: dict[str, Any], transfer_id: TransferId,
                       descriptor: dict[str, Any], fault: Fault | None, target: dict[str, Any],
                       timeout_s: float) -> dict[str, Any]:
        payload = outgoing.packed.buffer
        if fault is not None and fault.hits(FaultKind.DELAY):
            sleep_unless_cancelled(fault.delay_s, outgoing.cancelled, transfer_id)
        if fault is not None and fault.hits(FaultKind.CORRUPT):
            payload = corrupted_copy(payload, fault.at_fraction)
        die_at = payload.numel() * fault.at_fraction if fault is not None and fault.hits(FaultKind.DIE) else None

        def progress(bytes_sent: int) -> None:
            if outgoing.cancelled.is_set():
                raise TransferAborted(transfer_id)
            if die_at is not None and bytes_sent >= die_at:
                self._transfer_die()

        progress(0)
        sender = self._transfer_role(backend, config, "sender")
        outgoing.sender = sender
        job = SendJob(transfer_id, payload, descriptor, self.transfer_info(), target, time.monotonic() + timeout_s,
                      fault is not None and fault.hits(FaultKind.DROP), progress, outgoing.cancelled)
        try:
            return sender.send(job)
        except (TransferError, TransferAborted, SimulatedPeerDeath):
            raise
        except Exception as error:
            raise TransferError(FailureReason.BACKEND_ERROR, f"{backend} send failed: {error!r}") from error

    def _transfer_incoming(self, transfer_id: TransferId) -> Incoming:
        with self._transfer_state().lock:
            incoming = self._transfer_state().incoming.get(transfer_id)
        if incoming is None:
            raise TransferAborted(transfer_id)
        return incoming

    def _transfer_role(self, backend: str, config: dict[str, Any], kind: str) -> Any:
        state = self._transfer_state()
        role_key = (backend, json.dumps(config, sort_keys=True, default=str), kind)
        with state.lock:
            role = state.roles.get(role_key)
            if role is None:
                backend_cls = registry.backend_class(backend)
                settings = backend_cls.Config(**config)
                role = (backend_cls.sender_cls if kind == "sender" else backend_cls.receiver_cls)(settings)
                state.roles[role_key] = role
        return role

    def _transfer_die(self) -> None:
        if _in_ray_actor():
            os._exit(1)  # fault injection: a real crash, no cleanup, like a killed process
        raise SimulatedPeerDeath("endpoint was killed by an injected fault")

    def _transfer_sweep(self) -> None:
        """Abort entries abandoned by an orchestrator that died (long past their deadline)."""
        state, now = self._transfer_state(), time.monotonic()
        with state.lock:
            stale_in = [tid for tid, inc in state.incoming.items() if now > inc.job.deadline + _STALE_AFTER_S]
            stale_out = [tid for tid, out in state.outgoing.items() if now > out.deadline and out.idle.is_set()]
        for tid in stale_in:
            self.transfer_abort(tid, source_quiesced=False)
        for tid in stale_out:
            self.transfer_release(tid)

    def _transfer_state(self) -> EndpointState:
        state = self.__dict__.get("_kvfleet_transfer_state")
        if state is None:
            with _STATE_LOCK:
                state = self.__dict__.setdefault("_kvfleet_transfer_state", EndpointState())
        return state
