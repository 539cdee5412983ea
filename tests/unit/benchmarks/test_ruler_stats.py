"""ruler_stats and default_choice on hand-made job rows: kept probes, paired bootstrap, the
choose / report split, and the default rule (highest ratio that clears the bar on the choose half)."""

from __future__ import annotations

from benchmarks.default_choice import choose_default, held_back, near_lossless
from benchmarks.ruler_stats import kept_probes, load_costs, paired_bootstrap, scored_cells, summarize


def _job(press, ratio, doc, correct, load_s=1.0):
    return {"press": press, "compression_ratio": ratio, "doc_id": doc, "bytes_stored": 100 if press == "none" else 50,
            "load_s": load_s, "peak_growth_mib": 10.0,
            "answers": [{"probe": i, "correct": c} for i, c in enumerate(correct)]}


DOCS = [{"doc_id": f"d{s}", "family": "ruler", "task": "niah_single", "seed": s, "target_tokens": 1024}
        for s in range(4)]
SPLITS = {0: "choose", 1: "report", 2: "choose", 3: "report"}


def test_the_score_is_accuracy_over_uncompressed_so_answers_flipping_both_ways_cost_nothing():
    # regression: the score was the share of uncompressed's right answers still right (0.0 here), which
    # reads noise that flips a weak model's answers both ways as loss (compactor at 0.1 read 0.97)
    jobs = [_job("none", 0.0, "d0", [True, False, True]), _job("p", 0.5, "d0", [False, True, True])]
    assert kept_probes(jobs) == {"d0": {0, 2}}
    row = next(r for r in summarize(jobs, DOCS[:1], {0: "choose"}) if r["split"] == "all")
    assert row["relative"] == 1.0 and row["kept_probes"] == 2 and row["probes"] == 3
    assert (row["retained"], row["lost"], row["gained"]) == (0.5, 1, 1)


def test_presses_run_on_every_document_of_a_cell_uncompressed_answers_at_all():
    docs = [*DOCS, {"doc_id": "v0", "family": "ruler", "task": "variable_tracking", "seed": 0, "target_tokens": 1024}]
    jobs = [_job("none", 0.0, "d0", [False]), _job("none", 0.0, "d1", [True]), _job("none", 0.0, "v0", [False])]
    assert scored_cells(jobs, docs) == {("niah_single", 1024)}  # d0 is run (its cell is), v0 is not


def test_paired_bootstrap_interval_brackets_the_point_and_narrows_with_more_documents():
    point, low, high = paired_bootstrap([(1, 2), (2, 2), (0, 2), (2, 2)])
    assert point == 0.625 and low < point < high
    _, low_many, high_many = paired_bootstrap([(1, 2), (2, 2), (0, 2), (2, 2)] * 10)
    assert high_many - low_many < high - low
    assert paired_bootstrap([(0, 0)]) == (None, None, None)
    assert paired_bootstrap([(3, 3)] * 5) == (1.0, 1.0, 1.0)


def test_summary_splits_by_seed_and_reports_bytes_and_load_vs_none():
    jobs = [_job("none", 0.0, d["doc_id"], [True, True], 2.0) for d in DOCS]
    jobs += [_job("p", 0.5, "d0", [True, True], 4.0), _job("p", 0.5, "d1", [True, False], 6.0),
             _job("p", 0.5, "d2", [True, True], 4.0), _job("p", 0.5, "d3", [False, False], 6.0)]
    rows = {r["split"]: r for r in summarize(jobs, DOCS, SPLITS)}
    assert rows["choose"]["relative"] == 1.0 and rows["report"]["relative"] == 0.25
    assert rows["all"]["relative"] == 0.625 and rows["all"]["bytes_vs_none"] == 0.5
    assert rows["all"]["by_length"]["1024"]["kept_probes"] == 8
    cost = next(c for c in load_costs(jobs, DOCS) if c["press"] == "p")
    assert cost["load_s"] == 5.0 and cost["load_vs_none"] == 2.5


def _row(press, ratio, split, relative, low=None):
    return {"press": press, "compression_ratio": ratio, "split": split, "relative": relative,
            "ci95": [relative - 0.05 if low is None else low, min(1.0, relative + 0.05)], "query_agnostic": True,
            "kept_probes": 40, "documents": 10}


def test_default_is_the_highest_ratio_with_a_press_whose_interval_clears_the_bar_on_the_choose_half():
    summary = [_row("a", 0.75, "choose", 0.80), _row("b", 0.5, "choose", 0.98, low=0.88),
               _row("a", 0.5, "choose", 0.97, low=0.95), _row("b", 0.25, "choose", 1.0),
               _row("a", 0.5, "report", 0.90, low=0.82), _row("b", 0.75, "report", 1.0)]  # the report half never decides
    choice = choose_default(summary, [])
    assert (choice["press"], choice["compression_ratio"], choice["meets_bar"]) == ("a", 0.5, True)
    assert held_back(summary, "a", 0.5)["relative"] == 0.90
    assert not near_lossless(held_back(summary, "a", 0.5)) and near_lossless(_row("b", 0.5, "report", 0.99, 0.95))
    # a point score over the bar with an interval below it does not qualify: the next ratio down decides
    choice = choose_default([r for r in summary if r["press"] != "a"], [])
    assert (choice["press"], choice["compression_ratio"], choice["meets_bar"]) == ("b", 0.25, True)


def test_without_a_ratio_that_clears_the_bar_the_lowest_ratio_is_chosen_and_said_so():
    summary = [_row("a", 0.5, "choose", 0.80), _row("a", 0.25, "choose", 0.90), _row("b", 0.25, "choose", 0.92)]
    choice = choose_default(summary, [])
    assert (choice["press"], choice["compression_ratio"], choice["meets_bar"]) == ("b", 0.25, False)


def test_ties_go_to_the_faster_load_on_the_longest_documents_and_query_aware_never_qualifies():
    summary = [_row("slow", 0.5, "choose", 1.0), _row("fast", 0.5, "choose", 1.0),
               {**_row("aware", 0.5, "choose", 1.0), "query_agnostic": False}]
    costs = [{"press": "slow", "compression_ratio": 0.5, "target_tokens": 4096, "load_s": 40.0},
             {"press": "fast", "compression_ratio": 0.5, "target_tokens": 4096, "load_s": 9.0},
             {"press": "slow", "compression_ratio": 0.5, "target_tokens": 1024, "load_s": 1.0}]
    assert choose_default(summary, costs)["press"] == "fast"
    assert choose_default([summary[2]], costs) is None
    at_quarter = [_row("slow", 0.25, "choose", 1.0), _row("fast", 0.25, "choose", 1.0)]  # costs measured at 0.5 only
    assert choose_default(at_quarter, costs)["press"] == "fast"


def test_only_configurations_measured_on_every_choose_document_compete():
    summary = [_row("everywhere", 0.5, "choose", 0.96), {**_row("short_only", 0.75, "choose", 1.0), "documents": 4}]
    assert choose_default(summary, [])["press"] == "everywhere"
