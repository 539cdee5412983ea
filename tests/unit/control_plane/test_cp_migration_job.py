"""MigrationJob: walk the step machine through success, retries, the rebuild fallback and failures."""

from __future__ import annotations

import pytest

from control_plane import InvalidTransition, MigrationMethod, MigrationPlan, MigrationReason, ReplicaId, SessionId
from control_plane.migration import MigrationJob, MigrationStep, StepResult

S = MigrationStep


def plan(method=MigrationMethod.TRANSFER, free_source=True, source="r1"):
    return MigrationPlan(SessionId("s"), ReplicaId(source) if source else None, ReplicaId("r2"),
                         MigrationReason.PRESSURE, method, stored_bytes=100, free_source=free_source)


def drive(job: MigrationJob, outcomes: dict[MigrationStep, list[bool]]) -> list[MigrationStep]:
    """Run the job like the shell would; each step takes the next scripted outcome (default: ok)."""
    walked = []
    while not job.finished:
        step = job.next_step()
        walked.append(step)
        queue = outcomes.get(step, [])
        job.on_result(StepResult(step, queue.pop(0) if queue else True, detail=f"{step.value} attempt"))
        assert len(walked) < 50, "job does not terminate"
    return walked


def test_transfer_happy_path():
    job = MigrationJob(plan())
    assert drive(job, {}) == [S.EXPORT, S.TRANSFER, S.IMPORT, S.FLIP, S.FREE_SOURCE]
    assert job.succeeded and job.flipped and not job.fell_back_to_rebuild and job.next_step() is S.DONE
    assert [h.step for h in job.history] == [S.EXPORT, S.TRANSFER, S.IMPORT, S.FLIP, S.FREE_SOURCE]


def test_rebuild_happy_path_without_a_source_to_free():
    job = MigrationJob(plan(MigrationMethod.REBUILD, free_source=False, source=None))
    assert drive(job, {}) == [S.PREFILL, S.FLIP]
    assert job.succeeded and job.method is MigrationMethod.REBUILD


def test_a_failed_transfer_is_discarded_and_retried_from_export():
    job = MigrationJob(plan(), retries=2)
    walked = drive(job, {S.TRANSFER: [False]})
    assert walked == [S.EXPORT, S.TRANSFER, S.DISCARD_TARGET, S.EXPORT, S.TRANSFER, S.IMPORT, S.FLIP, S.FREE_SOURCE]
    assert job.succeeded and job.failures["transfer"] == 1 and not job.fell_back_to_rebuild


def test_retries_exhausted_fall_back_to_rebuild_on_the_target():
    job = MigrationJob(plan(), retries=2)
    walked = drive(job, {S.IMPORT: [False, False, False]})
    assert walked == [
        S.EXPORT, S.TRANSFER, S.IMPORT, S.DISCARD_TARGET,
        S.EXPORT, S.TRANSFER, S.IMPORT, S.DISCARD_TARGET,
        S.EXPORT, S.TRANSFER, S.IMPORT, S.DISCARD_TARGET,
        S.PREFILL, S.FLIP, S.FREE_SOURCE,
    ]
    assert job.succeeded and job.fell_back_to_rebuild and job.method is MigrationMethod.REBUILD
    assert job.failures["transfer"] == 3 and "rebuilding" in job.warnings[0]
    # The flip only ever follows a complete import or a finished prefill.
    assert walked[walked.index(S.FLIP) - 1] is S.PREFILL


def test_export_failures_need_no_discard():
    job = MigrationJob(plan(), retries=0)
    assert drive(job, {S.EXPORT: [False]}) == [S.EXPORT, S.PREFILL, S.FLIP, S.FREE_SOURCE]


def test_prefill_failing_beyond_retries_fails_the_job_after_a_discard():
    job = MigrationJob(plan(MigrationMethod.REBUILD), retries=1)
    walked = drive(job, {S.PREFILL: [False, False]})
    assert walked == [S.PREFILL, S.DISCARD_TARGET, S.PREFILL, S.DISCARD_TARGET]
    assert job.finished and not job.succeeded and not job.flipped
    assert "prefill failed 2 times" in job.error


def test_failed_flip_discards_the_target_copy_and_fails():
    job = MigrationJob(plan())
    assert drive(job, {S.FLIP: [False]}) == [S.EXPORT, S.TRANSFER, S.IMPORT, S.FLIP, S.DISCARD_TARGET]
    assert not job.succeeded and job.error.startswith("flip failed")


def test_failed_discard_is_recorded_and_the_job_goes_on():
    job = MigrationJob(plan(), retries=1)
    drive(job, {S.TRANSFER: [False], S.DISCARD_TARGET: [False]})
    assert job.succeeded and any("discarding" in w for w in job.warnings)


def test_free_source_is_retried_then_left_as_a_warning():
    job = MigrationJob(plan(), retries=1)
    walked = drive(job, {S.FREE_SOURCE: [False, False]})
    assert walked[-2:] == [S.FREE_SOURCE, S.FREE_SOURCE]
    assert job.succeeded and "not freed" in job.warnings[-1]


def test_abort_before_the_flip_discards_then_fails():
    job = MigrationJob(plan())
    job.on_result(StepResult(S.EXPORT, True))
    assert job.abort("session deleted") is S.DISCARD_TARGET
    job.on_result(StepResult(S.DISCARD_TARGET, True))
    assert job.next_step() is S.FAILED and job.error == "aborted: session deleted"


def test_abort_after_the_flip_is_refused():
    job = MigrationJob(plan())
    for step in (S.EXPORT, S.TRANSFER, S.IMPORT, S.FLIP):
        job.on_result(StepResult(step, True))
    with pytest.raises(InvalidTransition, match="flipped"):
        job.abort("too late")


def test_results_for_the_wrong_step_or_a_finished_job_are_rejected():
    job = MigrationJob(plan())
    with pytest.raises(InvalidTransition, match="at step export, not import"):
        job.on_result(StepResult(S.IMPORT, True))
    drive(job, {})
    with pytest.raises(InvalidTransition, match="no more results"):
        job.on_result(StepResult(S.DONE, True))


def test_summary_is_json_ready():
    import json

    job = MigrationJob(plan(), retries=0)
    drive(job, {S.TRANSFER: [False]})
    summary = json.loads(json.dumps(job.summary()))
    assert summary["fell_back_to_rebuild"] and summary["step"] == "done" and summary["planned_method"] == "transfer"
    assert summary["history"][1] == {"step": "transfer", "ok": False, "detail": "transfer attempt"}
