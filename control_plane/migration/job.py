"""MigrationJob: the steps of one migration as a pure state machine the Serve shell drives.

The shell loops ``step = job.next_step()`` -> carry it out -> ``job.on_result(StepResult(...))``
until ``job.finished``. The job never touches a replica; it only says what comes next.

TRANSFER:  EXPORT -> TRANSFER -> IMPORT -> FLIP -> FREE_SOURCE -> DONE
REBUILD:   PREFILL -> FLIP -> FREE_SOURCE -> DONE          (FREE_SOURCE only if plan.free_source)

- A failed EXPORT, TRANSFER or IMPORT is retried from EXPORT, ``retries`` times; then the job
  falls back to REBUILD (PREFILL on the same target). A failed PREFILL is retried ``retries``
  times, then the job FAILS.
- Whatever the target may hold after a failed TRANSFER, IMPORT or PREFILL (or a failed FLIP or an
  abort) is dropped by a DISCARD_TARGET step first. The session is routed to the target only at
  FLIP, which comes after a verified IMPORT or a finished PREFILL: nothing ever answers from a half
  copy.
- A failed DISCARD_TARGET or FREE_SOURCE (after its retries) does not stop the job: it is recorded
  in ``warnings``, and the leftover entry shows up in ``ClusterView.stray_entries`` for cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from control_plane.errors import InvalidTransition
from control_plane.ids import JobId, SessionId, new_job_id
from control_plane.migration.plan import MigrationMethod, MigrationPlan


class MigrationStep(str, Enum):
    EXPORT = "export"                  # source packs the session's CompressedKV
    TRANSFER = "transfer"              # transfer ticket source -> target (with a timeout)
    IMPORT = "import"                  # target verifies the checksum and stores it (not routed yet)
    PREFILL = "prefill"                # target re-prefills the stored context under the session's press
    DISCARD_TARGET = "discard_target"  # target drops whatever this job put there (idempotent)
    FLIP = "flip"                      # control plane routes the session to the target
    FREE_SOURCE = "free_source"        # source frees its copy
    DONE = "done"
    FAILED = "failed"


TERMINAL_STEPS = frozenset({MigrationStep.DONE, MigrationStep.FAILED})
_S = MigrationStep
_TRANSFER_STEPS = frozenset({_S.EXPORT, _S.TRANSFER, _S.IMPORT})


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step as the shell saw it; ``detail`` goes into the job's history."""

    step: MigrationStep
    ok: bool
    detail: str = ""


class MigrationJob:
    """One plan being carried out. ``retries``: extra attempts per phase (transfer, prefill, free)."""

    def __init__(self, plan: MigrationPlan, *, retries: int = 2, job_id: JobId | None = None) -> None:
        self.plan = plan
        self.job_id = job_id or new_job_id()
        self.retries = retries
        self.method = plan.method
        self.fell_back_to_rebuild = False
        self.flipped = False
        self.failures: dict[str, int] = {"transfer": 0, "prefill": 0, "free": 0}
        self.history: list[StepResult] = []
        self.warnings: list[str] = []
        self.error: str | None = None
        self._step = _S.EXPORT if plan.method is MigrationMethod.TRANSFER else _S.PREFILL
        self._after_discard: MigrationStep | None = None

    @property
    def session_id(self) -> SessionId:
        return self.plan.session_id

    @property
    def finished(self) -> bool:
        return self._step in TERMINAL_STEPS

    @property
    def succeeded(self) -> bool:
        return self._step is _S.DONE

    def next_step(self) -> MigrationStep:
        """The step the shell must carry out now (DONE or FAILED once finished)."""
        return self._step

    def on_result(self, result: StepResult) -> MigrationStep:
        """Advance on the outcome of the current step; return the next step.

        Raises InvalidTransition when the job is finished or ``result.step`` is not the current step.
        """
        if self.finished:
            raise InvalidTransition(f"migration job {self.job_id} is {self._step.value}; it takes no more results")
        if result.step is not self._step:
            raise InvalidTransition(f"migration job {self.job_id} is at step {self._step.value}, "
                                    f"not {result.step.value}; report the current step's result")
        self.history.append(result)
        self._step = self._after_success(result) if result.ok else self._after_failure(result)
        return self._step

    def abort(self, reason: str) -> MigrationStep:
        """Cancel before the flip: discard what the target got, then FAILED. After the flip the move
        is complete and cannot be aborted (InvalidTransition)."""
        if self.finished or self.flipped:
            raise InvalidTransition(f"migration job {self.job_id} has {'finished' if self.finished else 'flipped'}"
                                    "; it can no longer be aborted")
        self.error = f"aborted: {reason}"
        self._step, self._after_discard = _S.DISCARD_TARGET, _S.FAILED
        return self._step

    def _after_success(self, result: StepResult) -> MigrationStep:
        step = result.step
        if step is _S.DISCARD_TARGET:
            return self._take_after_discard()
        if step is _S.FLIP:
            self.flipped = True
            return _S.FREE_SOURCE if self.plan.free_source and self.plan.source is not None else _S.DONE
        return {_S.EXPORT: _S.TRANSFER, _S.TRANSFER: _S.IMPORT, _S.IMPORT: _S.FLIP, _S.PREFILL: _S.FLIP,
                _S.FREE_SOURCE: _S.DONE}[step]

    def _after_failure(self, result: StepResult) -> MigrationStep:
        step = result.step
        if step in _TRANSFER_STEPS:
            self.failures["transfer"] += 1
            if self.failures["transfer"] <= self.retries:
                retry = _S.EXPORT
            else:
                self.method, self.fell_back_to_rebuild = MigrationMethod.REBUILD, True
                self.warnings.append(f"transfer failed {self.failures['transfer']} times ({result.detail}); "
                                     "rebuilding on the target")
                retry = _S.PREFILL
            return retry if step is _S.EXPORT else self._discard_then(retry)
        if step is _S.PREFILL:
            self.failures["prefill"] += 1
            if self.failures["prefill"] <= self.retries:
                return self._discard_then(_S.PREFILL)
            self.error = f"prefill failed {self.failures['prefill']} times: {result.detail}"
            return self._discard_then(_S.FAILED)
        if step is _S.FLIP:
            self.error = f"flip failed: {result.detail}"
            return self._discard_then(_S.FAILED)
        if step is _S.DISCARD_TARGET:
            self.warnings.append(f"discarding the target's partial copy failed ({result.detail})")
            return self._take_after_discard()
        self.failures["free"] += 1  # FREE_SOURCE
        if self.failures["free"] <= self.retries:
            return _S.FREE_SOURCE
        self.warnings.append(f"source copy not freed after {self.failures['free']} tries ({result.detail})")
        return _S.DONE

    def _discard_then(self, step: MigrationStep) -> MigrationStep:
        self._after_discard = step
        return _S.DISCARD_TARGET

    def _take_after_discard(self) -> MigrationStep:
        step, self._after_discard = self._after_discard or _S.FAILED, None
        return step

    def summary(self) -> dict[str, Any]:
        """JSON-ready status (for admin event details and logs)."""
        return {
            "job_id": self.job_id, "session_id": self.plan.session_id, "source": self.plan.source,
            "target": self.plan.target, "reason": self.plan.reason.value, "planned_method": self.plan.method.value,
            "method": self.method.value, "step": self._step.value, "flipped": self.flipped,
            "fell_back_to_rebuild": self.fell_back_to_rebuild, "failures": dict(self.failures),
            "warnings": list(self.warnings), "error": self.error,
            "history": [{"step": r.step.value, "ok": r.ok, "detail": r.detail} for r in self.history],
        }
