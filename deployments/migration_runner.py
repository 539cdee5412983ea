"""MigrationRunner: carries out control-plane MigrationJobs against replica handles.

The job (control_plane.migration.job) decides the next step; this class performs it and reports
the result. Every remote call has a timeout; any failure is reported as a failed step, and the
job decides whether to retry, rebuild by re-prefilling, or give up. Nothing is routed to the
target before the job's FLIP, which the control plane performs itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import ray

from control_plane.control_plane import ControlPlane
from control_plane.migration import MigrationPlan
from control_plane.migration.job import MigrationStep, StepResult
from deployments.config import AppConfig

log = logging.getLogger(__name__)
_STEP_TIMEOUT_S = 120.0


class MigrationRunner:
    def __init__(self, cp: ControlPlane, replicas: dict[str, Any], config: AppConfig):
        self.cp, self.replicas, self.config = cp, replicas, config
        self.counters: Counter[str] = Counter()
        self.fault_hook = None  # tests may set a callable(step, packed) -> packed to inject faults

    async def run_all(self, plans: list[MigrationPlan]) -> list[dict]:
        return [await self.run(plan) for plan in plans]

    async def run(self, plan: MigrationPlan) -> dict:
        """Drive one plan to completion; returns the job summary."""
        job = self.cp.start_migration(plan)
        state: dict[str, Any] = {}
        while not job.finished:
            step = job.next_step()
            try:
                detail = await asyncio.wait_for(self._perform(step, plan, state), timeout=_STEP_TIMEOUT_S)
                result = StepResult(step, ok=True, detail=detail or "")
            except Exception as exc:  # reported to the job, which retries or falls back
                log.warning("migration session=%s step %s failed: %s", plan.session_id, step.value, exc)
                result = StepResult(step, ok=False, detail=f"{type(exc).__name__}: {exc}")
            job = self.cp.report_step(job.job_id, result)
        self.counters["migrations_succeeded" if job.succeeded else "migrations_failed"] += 1
        return job.summary()

    async def _perform(self, step: MigrationStep, plan: MigrationPlan, state: dict[str, Any]) -> str:
        session = plan.session_id
        target = self.replicas[plan.target]
        if step is MigrationStep.EXPORT:
            state["packed"] = await self.replicas[plan.source].export.remote(session)
            return f"{state['packed'].nbytes} bytes packed"
        if step is MigrationStep.TRANSFER:
            packed = state.pop("packed")
            if self.fault_hook is not None:
                packed = self.fault_hook(step, packed)
            state["ref"] = ray.put(packed)  # object-store handoff; the target pulls it on import
            self.counters["transfer_bytes"] += packed.nbytes
            return "object_store"
        if step is MigrationStep.IMPORT:
            record = self.cp.view.session(session)
            stored = await target.import_packed.remote(session, state.pop("ref"), record.pinned)
            return f"imported {stored['stored_bytes']} bytes"
        if step is MigrationStep.PREFILL:
            record = self.cp.view.session(session)
            ctx = record.context
            context = list(ctx.token_ids) if ctx.token_ids is not None else (
                [dict(m) for m in ctx.messages] if ctx.messages is not None else ctx.text)
            stored = await target.load_session.remote(session, context, record.press, record.pinned)
            self.counters["rebuilds"] += 1
            return f"rebuilt {stored['stored_bytes']} bytes"
        if step is MigrationStep.DISCARD_TARGET:
            await target.free.remote(session)
            return "discarded"
        if step is MigrationStep.FREE_SOURCE:
            if plan.source in self.replicas:
                await self.replicas[plan.source].free.remote(session)
            return "source freed"
        raise ValueError(f"the shell does not perform step {step.value!r}")
