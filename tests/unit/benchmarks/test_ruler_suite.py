"""benchmarks/ruler: the documents are what their docstrings say (lengths, needles at depths,
distractors, determinism), and RULER string-match scoring rejects what it must."""

from __future__ import annotations

import pytest

from benchmarks.ruler import LENGTHS, TASKS, Probe, build_suite, question_sets, score, score_probe, split_of


@pytest.fixture(scope="module")
def count(loaded_model):
    return lambda text: len(loaded_model.tokenizer.encode(text, add_special_tokens=False))


@pytest.mark.parametrize("length", LENGTHS)
def test_every_task_hits_its_length_and_plants_every_answer(count, length):
    for doc in build_suite(list(TASKS), [0, 1], [length], count):
        assert abs(count(doc.context) - length) <= 0.03 * length, doc.doc_id
        for probe in doc.probes:
            for answer in probe.answers:
                assert answer in doc.context, (doc.doc_id, answer)
            for distractor in probe.distractors:
                assert distractor in doc.context and distractor not in probe.answers
            assert probe.depth == -1.0 or 0.0 <= probe.depth <= 1.0


def test_the_suite_is_deterministic_and_seeds_differ(count):
    first, again = build_suite(list(TASKS), [0, 1], [1024], count), build_suite(list(TASKS), [0, 1], [1024], count)
    assert [d.to_json(with_context=True) for d in first] == [d.to_json(with_context=True) for d in again]
    by_task = {}
    for doc in first:
        by_task.setdefault(doc.task, []).append(doc.context)
    assert all(a != b for a, b in by_task.values())


def test_needles_come_in_every_kind_and_at_several_depths(count):
    docs = build_suite(["niah_single", "niah_multikey"], [0, 1, 2, 3], list(LENGTHS), count)
    probes = [p for d in docs for p in d.probes]
    assert {p.kind for p in probes} == {"number", "name", "word", "code", "uuid"}
    assert len({round(p.depth, 1) for p in probes}) >= 5
    multikey = next(d for d in docs if d.task == "niah_multikey")
    assert multikey.context.count("One of the special magic") == 6  # 4 asked + 2 distractor needles
    assert "The grass is green." in next(d for d in docs if d.task == "niah_single").context


def test_the_split_is_by_seed_parity_and_question_sets_keep_their_seed(count):
    assert [split_of(s) for s in range(4)] == ["choose", "report", "choose", "report"]
    docs = question_sets([0, 1], 256, count)
    assert {(d.family, d.seed) for d in docs} == {(f, s) for f in ("document", "chat") for s in (0, 1)}
    assert all(len(d.probes) == 5 for d in docs)


def test_unknown_task_is_a_clear_error(count):
    with pytest.raises(ValueError, match="valid"):
        build_suite(["niah_nope"], [0], [1024], count)


def test_scoring_needs_every_value_and_no_distractor_first():
    probe = Probe("q", ("4821003",), "number", 0.5, ("1234567",))
    assert score("The special magic number for quiet-harbor is: 4821003.", probe)
    assert not score("It is 48210031.", probe)  # inside a longer number
    assert not score("1234567 or 4821003", probe)  # distractor named first
    assert score("4821003, not 1234567", probe)
    many = Probe("q", ("111", "222"), "number", 0.1)
    assert score("222 and 111", many) and not score("only 111", many)
    assert score("The word is Hammock.", Probe("q", ("hammock",), "word", 0.5))
    assert score_probe("The code is 9754", Probe("q", ("9754",), "code", 0.5), "document")
    assert not score_probe("The code is 9755", Probe("q", ("9754",), "code", 0.5), "document")
