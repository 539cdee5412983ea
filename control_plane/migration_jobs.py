"""MigrationJobs: the migrations in flight and what each step does to the session's record.

The pure ``MigrationJob`` says which step comes next; this book keeps one job per session and
moves the session's record in step with it: MIGRATING while the source still answers, REBUILDING
when no copy answers, READY on the target at the flip (which it performs itself), and back on the
source - or FAILED - when a job gives up. Jobs live in memory; after a restart
``control_plane.recovery`` re-plans what they were doing.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

from control_plane.cluster_view import ClusterView
from control_plane.errors import ControlPlaneError, InvalidMigration, UnknownMigrationJob
from control_plane.ids import JobId, SessionId
from control_plane.migration.job import MigrationJob, MigrationStep, StepResult
from control_plane.migration.plan import MigrationMethod, MigrationPlan
from control_plane.replica import resting_state
from control_plane.session import SessionRecord
from control_plane.states import MOVABLE_STATES, SessionState

log = logging.getLogger(__name__)


class MigrationJobs:
    """Starts jobs from plans and applies their step results. ``save`` persists then indexes a record."""

    def __init__(self, view: ClusterView, save: Callable[[SessionRecord], None], *, retries: int,
                 counters: Counter[str]) -> None:
        self.view = view
        self.save = save
        self.retries = retries
        self.counters = counters
        self._jobs: dict[JobId, MigrationJob] = {}
        self._by_session: dict[SessionId, JobId] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: JobId) -> MigrationJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownMigrationJob(f"no migration job {job_id!r} in flight; it finished or the control plane "
                                      "restarted (the session was re-planned)") from None

    def for_session(self, session_id: SessionId) -> MigrationJob | None:
        job_id = self._by_session.get(session_id)
        return self._jobs[job_id] if job_id else None

    def has(self, session_id: SessionId) -> bool:
        """A job drives this session now."""
        return session_id in self._by_session

    def start(self, plan: MigrationPlan) -> MigrationJob:
        """Begin carrying out ``plan``: the record moves to MIGRATING or REBUILDING and is saved.

        Raises UnknownSession, InvalidMigration (a job already runs for it) or InvalidTransition.
        """
        record = self.view.session(plan.session_id)
        running = self.for_session(plan.session_id)
        if running is not None:
            raise InvalidMigration(f"session {plan.session_id} already has migration job {running.job_id} "
                                   f"at step {running.next_step().value}; wait for it or abort it")
        self.save(self._record_at_start(record, plan))
        job = MigrationJob(plan, retries=self.retries)
        self._jobs[job.job_id], self._by_session[plan.session_id] = job, job.job_id
        self.counters[f"migrations_started_{plan.reason.value}"] += 1
        log.info("migration %s started: session=%s %s -> %s (%s, %s)", job.job_id, plan.session_id, plan.source,
                 plan.target, plan.method.value, plan.reason.value)
        return job

    def report(self, job_id: JobId, result: StepResult) -> MigrationJob:
        """Apply the shell's result for the job's current step; perform the flip when it is due.

        Returns the job; once ``job.finished`` it has left the book. Raises UnknownMigrationJob or
        InvalidTransition (result for a step that is not current).
        """
        job = self.get(job_id)
        fell_back = job.fell_back_to_rebuild
        job.on_result(result)
        if job.fell_back_to_rebuild and not fell_back:
            self.counters["rebuild_fallbacks"] += 1
            log.warning("migration %s: session=%s transfer failed %d times, rebuilding on %s", job.job_id,
                        job.session_id, job.failures["transfer"], job.plan.target)
            self._mark_rebuilding_if_unservable(job)
        if job.next_step() is MigrationStep.FLIP:
            self._flip(job)
        if job.finished:
            self._finish(job)
        return job

    def abort(self, job_id: JobId, reason: str) -> MigrationJob:
        """Cancel a job before its flip (see MigrationJob.abort); the shell still runs DISCARD_TARGET."""
        job = self.get(job_id)
        job.abort(reason)
        return job

    def _record_at_start(self, record: SessionRecord, plan: MigrationPlan) -> SessionRecord:
        if plan.method is MigrationMethod.TRANSFER or (record.state in MOVABLE_STATES and self._serves(record)):
            return record.transition(SessionState.MIGRATING, target_replica=plan.target)
        if record.state is SessionState.REBUILDING:
            return record.updated(target_replica=plan.target)
        return record.transition(SessionState.REBUILDING, target_replica=plan.target, tier=None)

    def _serves(self, record: SessionRecord) -> bool:
        replica = self.view.find_replica(record.replica) if record.replica else None
        return record.servable and replica is not None and replica.alive

    def _mark_rebuilding_if_unservable(self, job: MigrationJob) -> None:
        record = self.view.find_session(job.session_id)
        if record is not None and record.state is SessionState.MIGRATING and not self._serves(record):
            self.save(record.transition(SessionState.REBUILDING, tier=None))

    def _flip(self, job: MigrationJob) -> None:
        record = self.view.find_session(job.session_id)
        target = self.view.find_replica(job.plan.target)
        try:
            if record is None or target is None or not target.alive:
                raise InvalidMigration("session deleted" if record is None else f"target {job.plan.target} is gone")
            entry = next((e for e in self.view.copies_of(record.id) if e.replica_id == target.replica_id), None)
            tier = entry.tier if entry else target.primary_tier
            self.save(record.transition(
                resting_state(tier, target.primary_tier), replica=target.replica_id, node=target.node, tier=tier,
                stored_bytes=entry.stored_bytes if entry else record.stored_bytes, target_replica=None, failure=None,
            ))
        except ControlPlaneError as exc:
            job.on_result(StepResult(MigrationStep.FLIP, ok=False, detail=str(exc)))
            return
        job.on_result(StepResult(MigrationStep.FLIP, ok=True, detail=f"routed to {target.replica_id}"))

    def _finish(self, job: MigrationJob) -> None:
        del self._jobs[job.job_id]
        self._by_session.pop(job.session_id, None)
        outcome = "done" if job.succeeded else "failed"
        self.counters[f"migrations_{outcome}"] += 1
        log.info("migration %s %s: session=%s warnings=%s error=%s", job.job_id, outcome, job.session_id,
                 job.warnings, job.error)
        record = self.view.find_session(job.session_id)
        if job.succeeded or record is None:
            return
        if record.state is SessionState.MIGRATING and self._serves(record):
            source = self.view.find_replica(record.replica)
            back = resting_state(record.tier, source.primary_tier if source else None)
            self.save(record.transition(back, target_replica=None))
        elif record.state in (SessionState.MIGRATING, SessionState.REBUILDING):
            if record.state is SessionState.MIGRATING:
                record = record.transition(SessionState.REBUILDING, tier=None)
            self.save(record.transition(SessionState.FAILED, target_replica=None, failure=job.error))
