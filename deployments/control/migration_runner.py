"""MigrationRunner: carries out control-plane MigrationJobs against replica handles.

The job (control_plane.migration.job) decides the next step; this class performs it and reports
the result. Every remote call has a timeout; any failure is reported as a failed step, and the
job decides whether to retry, rebuild by re-prefilling, or give up. Nothing is routed to the
target before the job's FLIP, which the control plane performs itself.

Steps: EXPORT checks the source still holds the cache; TRANSFER runs one transfer ticket
(transfer module, configured backend) from the source's DecodeActor to the target's, which
verifies the checksum and layout and imports it (not yet routed); IMPORT confirms the target
holds it; PREFILL rebuilds from the durably stored context; DISCARD_TARGET / FREE_SOURCE free.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from control_plane.control_plane import ControlPlane
from control_plane.errors import InvalidMigration
from control_plane.migration import MigrationPlan
from control_plane.migration.job import MigrationStep, StepResult
from deployments.config import AppConfig
from kvpool.durable_files import PersistedCacheError
from kvpool.errors import CapacityError
from transfer import Fault, KVExpectation, make_backend, start_transfer

log = logging.getLogger(__name__)
_STEP_TIMEOUT_S = 300.0
_FAULTS = {"corrupt": Fault.corrupt, "drop": Fault.drop, "die": Fault.die, "delay": lambda: Fault.delay(3600.0)}


class MigrationRunner:
    def __init__(self, cp: ControlPlane, replicas: dict[str, Any], config: AppConfig):
        self.cp, self.replicas, self.config = cp, replicas, config
        self.backend = make_backend(config.transfer.backend, config.transfer.options)
        self.expect = KVExpectation(model_id=config.model.name)
        self.faults = [_FAULTS[name]() for name in config.transfer.faults]
        self.counters: Counter[str] = Counter()
        self.recovered_by: dict[str, str] = {}    # session -> "read" | "rebuild" (RecoveryRunner pops it)
        self.read_fallbacks: dict[str, str] = {}  # session -> why its durable copy was not used

    async def run_all(self, plans: list[MigrationPlan]) -> list[dict]:
        """Run plans one after another; a plan that can't start (e.g. its session already has a
        job, started by an admin action meanwhile) is skipped and logged, not fatal."""
        summaries = []
        for plan in plans:
            try:
                summaries.append(await self.run(plan))
            except InvalidMigration as exc:
                log.info("migration plan for session=%s skipped: %s", plan.session_id, exc)
        return summaries

    async def run(self, plan: MigrationPlan) -> dict:
        """Drive one plan to completion; returns the job summary."""
        job = self.cp.start_migration(plan)
        while not job.finished:
            step = job.next_step()
            try:
                detail = await asyncio.wait_for(self._perform(step, plan), timeout=_STEP_TIMEOUT_S)
                result = StepResult(step, ok=True, detail=detail or "")
            except Exception as exc:  # reported to the job, which retries or falls back
                log.warning("migration session=%s step %s failed: %s", plan.session_id, step.value, exc)
                result = StepResult(step, ok=False, detail=f"{type(exc).__name__}: {exc}")
            job = self.cp.report_step(job.job_id, result)
        self.counters["migrations_succeeded" if job.succeeded else "migrations_failed"] += 1
        return job.summary()

    async def _perform(self, step: MigrationStep, plan: MigrationPlan) -> str:
        session = plan.session_id
        target = self.replicas[plan.target]
        if step is MigrationStep.EXPORT:
            if session not in await self.replicas[plan.source].holds.remote():
                raise LookupError(f"{plan.source} no longer holds {session}")
            return "source holds the cache"
        if step is MigrationStep.TRANSFER:
            return await self._transfer(plan)
        if step is MigrationStep.IMPORT:
            held = (await target.holds.remote()).get(session)
            if held is None:
                raise LookupError(f"{plan.target} did not import {session}")
            return f"imported {held['nbytes']} bytes"
        if step is MigrationStep.PREFILL:
            record = self.cp.view.session(session)
            if plan.read_persisted and session not in self.read_fallbacks:
                read = await self._read_back(target, plan, record)
                if read is not None:
                    return read
            stored = await target.load_session.remote(session, record.context.prefill_input(), record.press,
                                                      record.pinned, record.owner, wait_for_actors=True,
                                                      background=plan.background)
            self.counters["rebuilds"] += 1
            self.recovered_by[session] = "rebuild"
            return f"rebuilt {stored['stored_bytes']} bytes"
        if step is MigrationStep.DISCARD_TARGET:
            await target.free.remote(session)
            return "discarded"
        if step is MigrationStep.FREE_SOURCE:
            if plan.source in self.replicas:
                await self.replicas[plan.source].free.remote(session)
            return "source freed"
        raise ValueError(f"the shell does not perform step {step.value!r}")

    async def _read_back(self, target: Any, plan: MigrationPlan, record: Any) -> str | None:
        """Read the session's durable copy back on the target; None (logged, counted) when it
        cannot be used - missing, corrupt, another owner/press/model/dtype, or no room - and the
        caller re-prefills instead."""
        try:
            stored = await target.restore_session.remote(plan.session_id, {"owner": record.owner, "press": record.press},
                                                         record.pinned, from_replica=plan.read_from)
        except Exception as exc:  # any failure of the read falls back to the re-prefill (logged, counted)
            reason = _read_failure(exc)
            self.read_fallbacks[plan.session_id] = reason
            self.counters["cache_read_fallbacks"] += 1
            self.counters[f"cache_read_fallbacks_{reason}"] += 1
            log.warning("session=%s: durable copy on %s not used (%s: %s); re-prefilling it", plan.session_id,
                        plan.target, reason, str(exc).splitlines()[0])
            return None
        self.counters["cache_reads"] += 1
        self.recovered_by[plan.session_id] = "read"
        return f"read back {stored['stored_bytes']} bytes from the durable copy in {stored['load_s']:.3f} s"

    async def _transfer(self, plan: MigrationPlan) -> str:
        source = await self.replicas[plan.source].decode_endpoint.remote()
        target = await self.replicas[plan.target].decode_endpoint.remote()
        fault = self.faults.pop(0) if self.faults else None
        timeout_s = self.config.transfer.timeout_s
        ticket = start_transfer(self.backend, source, target, plan.session_id, expect=self.expect, timeout_s=timeout_s,
                                    fault=fault)
        status = await ticket.wait_async(timeout_s + 5)
        if status.state.value != "done":
            ticket.abort()
            self.counters[f"transfer_failed_{status.reason.value if status.reason else 'unknown'}"] += 1
            raise RuntimeError(f"transfer {status.state.value}: {status.reason} {status.message}")
        self.counters["transfer_bytes"] += status.bytes_moved
        self.counters["transfers_done"] += 1
        return f"{status.backend}: {status.bytes_moved} bytes in {status.elapsed_s:.3f} s"


def _read_failure(exc: BaseException) -> str:
    """Why a read-back failed, as a counter suffix: PersistedCacheError's reason (missing, corrupt,
    mismatch), ``no_room`` for a full pool, else the exception's class name."""
    if isinstance(exc, PersistedCacheError):
        return exc.reason
    if isinstance(exc, CapacityError):
        return "no_room"
    return type(getattr(exc, "cause", None) or exc).__name__
