"""Batched decode == one-row decode, token for token, on the real embedded model (no Ray).

The oracle is ``KVEngine.generate_ids`` (one request per forward). Rows mix an uncompressed
session, knorm 0.5, kvzip 0.5 (per-head ragged), an int8-coded session and a plain request
(raw-token prefix), with different context and question lengths, joining at different steps.
Every test runs in float32 and in bfloat16.
"""

from __future__ import annotations

import threading
import time

import pytest

from deployments.engine.decode import BatchConfig, DecodeLoop
from deployments.engine.engine import GenerationStep
from deployments.engine.sampling import SamplingParams
from kvpool import codecs
from kvpool.press_spec import NO_PRESS, PressSpec
from tests.conftest import DTYPES, document

GREEDY = SamplingParams(max_tokens=14, ignore_eos=True)


class Collector:
    """A request's stream as the loop delivers it (on the loop thread)."""

    def __init__(self) -> None:
        self.steps: list[GenerationStep] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.changed = threading.Condition()

    def __call__(self, item) -> None:
        with self.changed:
            if isinstance(item, BaseException):
                self.error = item
                self.done.set()
            else:
                self.steps.append(item)
                if item.finish_reason is not None:
                    self.done.set()
            self.changed.notify_all()

    @property
    def tokens(self) -> list[int]:
        return [s.token.token_id for s in self.steps if s.token is not None]

    def wait_tokens(self, n: int, timeout_s: float = 120) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.tokens) >= n or self.done.is_set(), timeout_s):
                raise TimeoutError(f"no {n} tokens within {timeout_s} s")


def summary(steps) -> list[tuple]:
    return [(s.token.token_id if s.token else None, s.text, s.finish_reason, s.prompt_tokens, s.completion_tokens)
            for s in steps]


@pytest.fixture(scope="module", params=DTYPES)
def engine(request, engines):
    return engines(request.param)


@pytest.fixture(scope="module")
def caches(engine):
    knorm = engine.prefill(document(8), PressSpec(name="knorm", compression_ratio=0.5))
    plain_prompt = engine.renderer.encode("Tell me about the annual budget of the committee. " * 6)
    return {
        "none": engine.prefill(document(4), NO_PRESS),
        "knorm": knorm,
        "kvzip": engine.prefill(document(6), PressSpec(name="kvzip", compression_ratio=0.5)),
        "int8": codecs.decode(codecs.encode(engine.prefill(document(5), NO_PRESS), "int8")),
        "plain": engine.prefill(plain_prompt[:-5], NO_PRESS),
        "plain_suffix": plain_prompt[-5:],
    }


@pytest.fixture(scope="module")
def loop(engine):
    decode_loop = DecodeLoop(engine, BatchConfig(max_batch_size=16))
    yield decode_loop
    decode_loop.close()


def jobs(engine, caches) -> list[tuple]:
    q = engine.question_ids
    return [
        (caches["none"], q(caches["none"], "What is the secret code of the vault?"), GREEDY),
        (caches["knorm"], q(caches["knorm"], "Where was Alice born?"), SamplingParams(max_tokens=10)),
        (caches["kvzip"], q(caches["kvzip"], "When is the meeting? Answer in one short sentence, please."), GREEDY),
        (caches["int8"], q(caches["int8"], "Summarize the document."), SamplingParams(max_tokens=12, stop=(".",))),
        (caches["plain"], list(caches["plain_suffix"]), SamplingParams(max_tokens=9, logprobs=True, top_logprobs=2)),
    ]


_ALONE: dict[tuple, list[GenerationStep]] = {}
PACKED_JOINERS_BF16 = (
    "bfloat16 matmuls on this CPU are not batch-invariant: oneDNN picks its kernel by the number of rows, so a "
    "row's outputs in a forward that packs several joiners' question tokens differ from its alone run by a "
    "bfloat16 ulp (float32: 1e-7), enough to flip a near-tied greedy token (measured: token 5 of one row). "
    "Joins of one row per step and decode steps are checked in bfloat16 by the other tests here")


def skip_packed_joiners_in_bfloat16(engine) -> None:
    if engine.dtype == "bfloat16":
        pytest.skip(PACKED_JOINERS_BF16)


def alone(engine, ckv, ids, params) -> list[GenerationStep]:
    """The one-row oracle (computed once per cache, question and parameters)."""
    key = (engine.dtype, id(ckv), tuple(ids), params.model_dump_json())
    if key not in _ALONE:
        _ALONE[key] = list(engine.generate_ids(ckv, ids, params))
    return _ALONE[key]


def test_kvzip_cache_is_per_head_ragged(caches):
    assert caches["kvzip"].is_ragged and not caches["knorm"].is_ragged


def test_mixed_rows_joining_at_different_steps_match_one_row_decode(engine, caches, loop):
    work = jobs(engine, caches)
    expected = [alone(engine, *job) for job in work]
    collectors = []
    for i, (ckv, ids, params) in enumerate(work):
        if collectors:
            collectors[-1].wait_tokens(i)  # join after the previous row has made i tokens
        collectors.append(Collector())
        loop.submit(ckv, ids, params, collectors[-1])
    for c in collectors:
        assert c.done.wait(300) and c.error is None
    for c, exp in zip(collectors, expected):
        assert summary(c.steps) == summary(exp)
    plain_got, plain_exp = collectors[4].steps, expected[4]
    for got, exp in zip(plain_got, plain_exp):
        if exp.token is not None:
            assert got.token.logprob == pytest.approx(exp.token.logprob, abs=1e-4)
            assert [t for t, _ in got.token.top_logprobs] == [t for t, _ in exp.token.top_logprobs]
    assert loop.snapshot()["joins"] >= 5


def test_same_session_asked_eight_times_at_once(engine, caches, loop):
    skip_packed_joiners_in_bfloat16(engine)  # eight joiners submitted at once share their first forward
    ckv = caches["knorm"]
    questions = ["What is the secret code?", "Where was Alice born?", "When is the meeting?", "Summarize.",
                 "Who discussed the budget?", "What is the new wing?", "Name a city.", "What day is it?"]
    ids = [engine.question_ids(ckv, q) for q in questions]
    params = SamplingParams(max_tokens=8, ignore_eos=True)
    collectors = [Collector() for _ in ids]
    for c, qids in zip(collectors, ids):
        loop.submit(ckv, qids, params, c)
    for c in collectors:
        assert c.done.wait(300) and c.error is None
    for c, qids in zip(collectors, ids):
        assert c.tokens == [s.token.token_id for s in alone(engine, ckv, qids, params) if s.token]
    assert int(loop.snapshot()["batch_size_buckets"]["4"]) < loop.snapshot()["steps"]  # some step had > 4 rows
    assert loop.snapshot()["max_batch_size"] == 16


def test_seeded_sampling_is_the_same_batched_or_alone(engine, caches, loop):
    ckv = caches["none"]
    sampled = SamplingParams(max_tokens=12, temperature=0.9, top_p=0.9, seed=1234, ignore_eos=True)
    ids = engine.question_ids(ckv, "Write a sentence about the library.")
    other = Collector()
    loop.submit(caches["knorm"], engine.question_ids(caches["knorm"], "Where was Alice born?"), GREEDY, other)
    row = Collector()
    loop.submit(ckv, ids, sampled, row)
    assert row.done.wait(300) and other.done.wait(300)
    assert row.tokens == [s.token.token_id for s in alone(engine, ckv, ids, sampled) if s.token]


def test_a_cancelled_row_leaves_without_changing_the_others(engine, caches, loop):
    skip_packed_joiners_in_bfloat16(engine)  # three joiners submitted at once share their first forward
    work = jobs(engine, caches)[:3]
    expected = [alone(engine, *job) for job in work]
    collectors = [Collector() for _ in work]
    request_ids = [loop.submit(ckv, ids, p, c) for (ckv, ids, p), c in zip(work, collectors)]
    collectors[1].wait_tokens(3)
    loop.abort(request_ids[1])
    for c in collectors:
        assert c.done.wait(300)
    assert collectors[1].steps[-1].finish_reason == "cancelled"
    assert len(collectors[1].tokens) < len([s for s in expected[1] if s.token])
    for i in (0, 2):
        assert summary(collectors[i].steps) == summary(expected[i])


def test_a_failing_row_fails_alone(engine, caches, loop):
    broken = codecs.encode(caches["none"], "int8")  # still int8-coded: cannot be laid out for decoding
    good = jobs(engine, caches)[1:3]
    expected = [alone(engine, *job) for job in good]
    collectors = [Collector() for _ in good]
    bad = Collector()
    loop.submit(*good[0], collectors[0])
    collectors[0].wait_tokens(2)
    loop.submit(broken, engine.question_ids(caches["none"], "What is the code?"), GREEDY, bad)
    loop.submit(*good[1], collectors[1])
    for c in (*collectors, bad):
        assert c.done.wait(300)
    assert bad.error is not None and "codec" in str(bad.error)
    for c, exp in zip(collectors, expected):
        assert c.error is None and summary(c.steps) == summary(exp)
    deadline = time.monotonic() + 30
    while loop.snapshot()["batch_rows"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.snapshot()["batch_rows"] == 0 and loop.snapshot()["running"] == 0


def submit_together(engine, loop, work: list[tuple]) -> list[Collector]:
    """Submit ``work`` so that all but (at most) the first join in one step: the loop thread
    blocks on the engine lock in its first forward while the rest queue up."""
    collectors = [Collector() for _ in work]
    with engine._lock:
        for (ckv, ids, params), c in zip(work, collectors):
            loop.submit(ckv, ids, params, c)
    return collectors


def test_joiners_of_one_step_share_the_packed_forward_and_match_one_row_decode(engine, caches, loop):
    skip_packed_joiners_in_bfloat16(engine)
    work = jobs(engine, caches)
    expected = [alone(engine, *job) for job in work]
    before = loop.snapshot()
    forwards = []
    hook = engine.model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        collectors = submit_together(engine, loop, work)
        for c in collectors:
            assert c.done.wait(300) and c.error is None
    finally:
        hook.remove()
    for c, exp in zip(collectors, expected):
        assert summary(c.steps) == summary(exp)
    after = loop.snapshot()
    assert after["joins"] - before["joins"] == len(work)
    assert after["extend_forwards"] - before["extend_forwards"] <= 2  # the first may join a step alone
    assert len(forwards) == after["steps"] - before["steps"]  # ONE forward per step, joiners included


def test_a_broken_joiner_of_a_packed_forward_fails_alone(engine, caches, loop, caplog):
    good = jobs(engine, caches)[:3]
    expected = [alone(engine, *job) for job in good]
    first = Collector()
    loop.submit(*good[0], first)
    first.wait_tokens(2)  # a decoding row is in the batch when the packed forward fails
    # a token id past the vocabulary: the packed forward raises, its rows retry one by one
    work = [(caches["none"], [engine.vocab_size + 7], GREEDY), *good[1:]]
    collectors = [first, *submit_together(engine, loop, work)]
    for c in collectors:
        assert c.done.wait(300)
    assert collectors[1].error is not None
    assert "retrying them one by one" in caplog.text
    for c, exp in zip([collectors[0], *collectors[2:]], expected):
        assert c.error is None and summary(c.steps) == summary(exp)


def test_a_forward_failing_midway_is_retried_row_by_row(engine, caches, loop, monkeypatch):
    """The first packed forward with several rows raises in layer 5, after layers 0-4 wrote their
    columns into every row's buffers: each row is fed again alone and still matches one-row decode."""
    from deployments.engine.decode import packed

    work = jobs(engine, caches)[:4]
    expected = [alone(engine, *job) for job in work]
    attend, failed = packed.PackedStep.attend, []

    def attend_failing_once(self, func, module, query, dropout, kwargs):
        if not failed and len(self.rows) > 2 and module.layer_idx == 5:
            failed.append(len(self.rows))
            raise RuntimeError("injected failure in layer 5")
        return attend(self, func, module, query, dropout, kwargs)

    first = Collector()
    loop.submit(*work[0], first)
    first.wait_tokens(3)
    monkeypatch.setattr(packed.PackedStep, "attend", attend_failing_once)
    collectors = [first, *submit_together(engine, loop, work[1:])]
    for c in collectors:
        assert c.done.wait(300)
    assert failed
    for c, exp in zip(collectors, expected):
        assert c.error is None and summary(c.steps) == summary(exp)


def test_rows_outgrowing_their_reserved_room_still_match(engine, caches, loop, monkeypatch):
    """No generated tokens reserved at join: every row reallocates its own buffers while decoding."""
    skip_packed_joiners_in_bfloat16(engine)
    from deployments.engine.decode import runner

    monkeypatch.setattr(runner, "SPARE_TOKENS", 0)
    work = jobs(engine, caches)
    expected = [alone(engine, *job) for job in work]
    collectors = submit_together(engine, loop, work)
    for c in collectors:
        assert c.done.wait(300) and c.error is None
    for c, exp in zip(collectors, expected):
        assert summary(c.steps) == summary(exp)
