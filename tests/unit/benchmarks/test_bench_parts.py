"""Benchmark building blocks without a model or a server: task generation, scoring, press labels,
timing summaries, capacity arithmetic, targets and the Markdown report."""

from __future__ import annotations

import pytest

from benchmarks.press_grid import press_spec
from benchmarks.quality_sets import build_documents
from benchmarks.quality_tasks import FACT_SLOTS, NEEDLE_KEYS, PREAMBLE, exact_match, facts_document, needle_document
from benchmarks.serving import capacity, report, targets
from benchmarks.timing import interleaved, paired_ratios, percentile, round_medians, summarize


def words(text: str) -> int:
    return len(text.split())


def test_needle_document_is_seeded_and_has_its_facts():
    doc = needle_document(3, 600, words, needles=5)
    assert doc == needle_document(3, 600, words, needles=5)
    assert doc.context != needle_document(4, 600, words, needles=5).context
    assert abs(words(doc.context) - 600) <= 30
    assert len(doc.items) == 5 and len({i.answer for i in doc.items}) == 5
    depths = [i.depth for i in doc.items]
    assert depths == sorted(depths) and depths[0] < 0.2 and depths[-1] > 0.8
    assert doc.context.startswith(PREAMBLE)
    assert len({i.question for i in doc.items}) == 5  # distinct keys
    for item in doc.items:
        fact = next(f.format(v=item.answer) for f, q in NEEDLE_KEYS if q == item.question)
        assert fact in doc.context


def test_facts_document_questions_answerable_from_context():
    doc = facts_document(1, 500, words)
    assert len(doc.items) == 5 and len({i.kind for i in doc.items}) == 5
    for item in doc.items:
        fact_template = FACT_SLOTS[item.kind][0]
        assert fact_template.split("{c}")[0] in doc.context and f" {item.answer}." in doc.context


def test_build_documents_rejects_unknown_task_and_kind():
    with pytest.raises(ValueError, match="valid"):
        build_documents(["needle", "poetry"], [0], 300, words)
    with pytest.raises(ValueError, match="valid"):
        exact_match("x", "y", "shoe size")


@pytest.mark.parametrize("answer, expected, kind, ok", [
    ("The access code for room 417 is 5823.", "5823", "code", True),
    ("5823", "5823", "code", True),
    ("Room 417: 1234, or maybe 5823", "5823", "code", False),
    ("I don't know", "5823", "code", False),
    ("The flag of Veltria is mostly purple.", "purple", "colour", True),
    ("Green, or perhaps purple", "purple", "colour", False),
    ("Purple - not green", "purple", "colour", True),
    ("", "purple", "colour", False),
])
def test_exact_match(answer, expected, kind, ok):
    assert exact_match(answer, expected, kind) is ok


def test_press_labels():
    assert press_spec("knorm", 0.5) == {"name": "knorm", "compression_ratio": 0.5}
    assert press_spec("adakv(snapkv)", 0.25) == {"name": "adakv", "compression_ratio": 0.25,
                                                 "presses": [{"name": "snapkv"}]}
    assert press_spec("knorm", 0.0) == {"name": "none"}
    with pytest.raises(ValueError):
        press_spec("adakv(snapkv", 0.5)


def test_timing_helpers():
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([5], 95) == 5
    assert summarize([])["median_s"] is None
    assert summarize([1.0, 3.0])["median_s"] == 2.0
    order = []
    samples = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 2)
    assert order == ["a", "b", "b", "a"] and all(len(v) == 2 for v in samples.values())
    assert paired_ratios([4.0, 6.0], [2.0, 3.0]) == [2.0, 2.0]
    order.clear()
    samples = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 2,
                          calls_per_round={"a": 3})
    assert order == ["a", "a", "a", "b", "b", "a", "a", "a"] and len(samples["a"]) == 6
    assert round_medians([1.0, 2.0, 9.0, 4.0, 5.0, 6.0], 3) == [2.0, 5.0]


def _job(press, ratio, nbytes):
    return {"press": press, "compression_ratio": ratio, "tokens_read": 1000, "tokens_kept": 1000 * (1 - ratio),
            "bytes_stored": nbytes, "bytes_stored_int8": nbytes // 4}


def test_capacity_summary_goal_is_in_whole_sessions():
    jobs = [_job("none", 0.0, 100), _job("knorm", 0.25, 75), _job("knorm", 0.5, 51)]
    rows = {r["compression_ratio"]: r for r in capacity.summarize(jobs, budget_bytes=1600)}
    assert rows[0.0]["sessions_held"] == 16
    assert rows[0.25]["sessions_held"] == 21 and rows[0.25]["meets_goal"]  # floor(16 / 0.75) = 21
    assert rows[0.5]["sessions_held"] == 31 and not rows[0.5]["meets_goal"]  # 51 > 50 bytes: 31 < 32


def _result():
    accuracy = [{"press": "none", "compression_ratio": 0.0, "codec": "none", "questions": 10, "correct": 10,
                 "accuracy": 1.0, "accuracy_by_task": {}},
                {"press": "knorm", "compression_ratio": 0.5, "codec": "none", "questions": 10, "correct": 9,
                 "accuracy": 0.9, "accuracy_by_task": {}},
                {"press": "snapkv", "compression_ratio": 0.5, "codec": "none", "questions": 10, "correct": 10,
                 "accuracy": 1.0, "accuracy_by_task": {}}]
    return {"config": {"mode": "test"}, "quality": {"accuracy": accuracy, "int8_path": None, "int8_note": "off"},
            "capacity": {"budget_bytes": 1600, "rows": capacity.summarize(
                [_job("none", 0.0, 100), _job("knorm", 0.5, 50)], 1600)}}


def test_targets():
    checks = {c["target"][:8]: c for c in targets.check(_result())}
    assert checks["accuracy"[:8]]["met"] is True
    assert checks["accuracy"[:8]]["measured"]["none"]["best_press"] == "snapkv"
    assert checks["sessions"]["met"] is True
    assert checks["stored-s"]["met"] is None  # no TTFT data


def test_report_renders_tables():
    markdown = report.render(_result())
    assert "## Targets" in markdown and "| snapkv |" in markdown and "| knorm | 0.5 |" in markdown


def _engine_result() -> dict:
    summary = {"n": 3, "median_s": 1.0, "p95_s": 1.5}
    return {"benchmark": "engine_ttft", "git": {"commit": "abc1234"}, "machine": {"load_average": [1.0, 1.0, 1.0]},
            "ttft": [{"context_tokens": 4100, "target_tokens": 4096, "question_tokens": 25,
                      "stored_compressed": summary, "stored_full": summary,
                      "reprefill": {"n": 3, "median_s": 40.0, "p95_s": 45.0},
                      "speedup_reprefill_over_stored_compressed": {"median_x": 40.0}}],
            "bytes": [{"press": "knorm", "compression_ratio": 0.5, "bytes": 10, "bytes_int8": 3}]}


def test_engine_from_reuses_a_measured_engine_result(tmp_path):
    import json

    from benchmarks import serving_report

    path = tmp_path / "engine_ttft.json"
    path.write_text(json.dumps(_engine_result()))
    engine = serving_report._engine_from(path)
    result = {**_result(), "engine": engine}

    assert engine["reused_from"] == str(path)
    assert targets.ttft_target(result)["measured"]["engine_speedup_x"] == 40.0
    assert f"Reused from `{path}`" in report.render(result)


def test_engine_from_refuses_missing_and_foreign_files(tmp_path):
    import json

    from benchmarks import serving_report

    with pytest.raises(SystemExit, match="no such file"):
        serving_report._engine_from(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmark": "kvpool_capacity"}))
    with pytest.raises(SystemExit, match="not an engine_ttft result"):
        serving_report._engine_from(other)


def test_resume_keeps_finished_sections_of_the_same_config(tmp_path):
    import json

    from benchmarks import serving_report

    config = {"quality": {"seeds": [0]}, "latency": {"rounds": 2}}
    partial = {"config": config, "git": {"commit": "abc"}, "quality": {"jobs": []}, "capacity": {"rows": []}}
    path = tmp_path / "serving_bench.partial.json"
    path.write_text(json.dumps(partial))

    kept = serving_report._resumed(path, config)
    assert set(kept) == {"quality", "capacity", "resumed_from"}
    with pytest.raises(SystemExit, match="settings differ"):
        serving_report._resumed(path, {**config, "quality": {"seeds": [0, 1]}})
    with pytest.raises(SystemExit, match="no such file"):
        serving_report._resumed(tmp_path / "missing.json", config)
