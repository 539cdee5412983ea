"""The batched-decode scheduler, alone: pure decisions checked with fake outputs (no model)."""

from __future__ import annotations

import pytest

from deployments.engine.decode import budget
from deployments.engine.decode.config import BatchConfig
from deployments.engine.decode.request import DecodeRequest, RowState
from deployments.engine.decode.scheduler import Scheduler
from deployments.engine.decode.step import RowOutput


def req(rid: str, question: int = 4, cache: int = 100, max_tokens: int = 3, ignore_eos: bool = False):
    return DecodeRequest(rid, question, cache, max_tokens, ignore_eos)


def tokens(step, **special: RowOutput) -> dict[str, RowOutput]:
    return {r: special.get(r, RowOutput(token_id=7)) for r in step.rows}


def test_fifo_admission_within_max_batch_size():
    s = Scheduler(BatchConfig(max_batch_size=2))
    for rid in "abc":
        s.add(req(rid))
    step = s.schedule()
    assert step.joins == ("a", "b") and step.decode == () and [r.request_id for r in s.waiting] == ["c"]
    s.update(step, tokens(step))
    step = s.schedule()
    assert step.decode == ("a", "b") and step.joins == ()


def test_joiners_enter_as_rows_leave_and_running_rows_keep_their_order():
    s = Scheduler(BatchConfig(max_batch_size=2))
    s.add(req("a", max_tokens=1))
    s.add(req("b", max_tokens=5))
    s.add(req("c"))
    step = s.schedule()
    events = s.update(step, tokens(step))
    assert [(e.request_id, e.finish_reason) for e in events] == [("a", "length"), ("b", None)]
    step = s.schedule()
    assert step.leaves == ("a",) and step.decode == ("b",) and step.joins == ("c",)


def test_stop_rules_eos_stop_string_max_tokens_ignore_eos_error():
    s = Scheduler(BatchConfig())
    for r in (req("eos"), req("ign", ignore_eos=True, max_tokens=2), req("str"), req("err"), req("len", max_tokens=1)):
        s.add(r)
    step = s.schedule()
    out = tokens(step, eos=RowOutput(2, is_eos=True), ign=RowOutput(2, is_eos=True),
                 str=RowOutput(5, hit_stop=True), err=RowOutput(error="boom"))
    verdicts = {e.request_id: e.finish_reason for e in s.update(step, out)}
    assert verdicts == {"eos": "stop", "ign": None, "str": "stop", "err": "error", "len": "length"}
    step = s.schedule()
    assert set(step.leaves) == {"eos", "str", "err", "len"} and step.decode == ("ign",)
    assert {e.request_id: e.finish_reason for e in s.update(step, tokens(step))} == {"ign": "length"}


def test_abort_waiting_and_running():
    s = Scheduler(BatchConfig(max_batch_size=1))
    s.add(req("a", max_tokens=10))
    s.add(req("b"))
    step = s.schedule()
    s.update(step, tokens(step))
    assert s.abort("b").finish_reason == "cancelled" and not s.waiting
    assert s.abort("a").finish_reason == "cancelled"
    assert s.abort("a") is None and s.abort("nobody") is None
    step = s.schedule()
    assert step.leaves == ("a",) and step.decode == () and step.joins == ()
    assert s.idle


def test_aborted_row_during_step_gets_no_verdict():
    s = Scheduler(BatchConfig())
    s.add(req("a"))
    s.add(req("b"))
    step = s.schedule()
    s.abort("a")
    assert [e.request_id for e in s.update(step, tokens(step))] == ["b"]


def test_max_batched_tokens_bounds_joiners_but_an_empty_step_admits_anything():
    s = Scheduler(BatchConfig(max_batched_tokens=10))
    s.add(req("long", question=50))
    s.add(req("short", question=6))
    s.add(req("short2", question=6))
    step = s.schedule()
    assert step.joins == ("long",)
    s.update(step, tokens(step))
    step = s.schedule()  # 1 running + 6 = 7 <= 10; + another 6 = 13 > 10
    assert step.decode == ("long",) and step.joins == ("short",)


def test_max_kv_tokens_blocks_the_queue_head_fifo():
    s = Scheduler(BatchConfig(max_kv_tokens=1000))
    s.add(req("a", cache=300, question=4, max_tokens=50))
    s.add(req("huge", cache=900, question=4))
    s.add(req("small", cache=10, question=4))
    step = s.schedule()
    assert step.joins == ("a",)  # huge: 305 + 905 > 1000, and small waits behind it (FIFO)
    assert [r.request_id for r in s.waiting] == ["huge", "small"]


def test_duplicate_id_is_refused():
    s = Scheduler(BatchConfig())
    s.add(req("a"))
    with pytest.raises(ValueError, match="already scheduled"):
        s.add(req("a"))


def test_budget_arithmetic():
    rows = [req("a", cache=10, question=2), req("b", cache=30, question=2)]
    assert budget.kv_tokens(rows) == 13 + 33  # each row's own columns: no padding to the longest
    assert budget.step_tokens(rows[:1], rows[1:]) == 1 + 2
    assert budget.kv_tokens([]) == 0


def test_states_follow_the_lifecycle():
    s = Scheduler(BatchConfig())
    r = req("a", max_tokens=1)
    s.add(r)
    assert r.state is RowState.WAITING
    step = s.schedule()
    assert r.state is RowState.RUNNING
    s.update(step, tokens(step))
    assert r.state is RowState.FINISHED and r.finish_reason == "length" and r.produced == 1
