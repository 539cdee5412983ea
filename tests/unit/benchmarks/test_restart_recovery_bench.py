"""benchmarks/restart_recovery.py without Ray: parts merge by size, and the plot draws every row."""

from __future__ import annotations

from benchmarks.restart_recovery import _merged, plot


def _row(sessions: int, tag: str) -> dict:
    mode = {"all_answered_s": 1.0, "load_ratio": 2.0, "load_alone_ratio": 1.1}
    return {"sessions": sessions, "tag": tag, "recomputed": dict(mode), "persisted": dict(mode)}


def test_a_part_replaces_the_rows_of_its_sizes_and_keeps_the_others():
    kept = [_row(5, "old"), _row(20, "old"), _row(50, "old")]
    merged = _merged(kept, [_row(20, "new"), _row(5, "new")])
    assert [(r["sessions"], r["tag"]) for r in merged] == [(5, "new"), (20, "new"), (50, "old")]


def test_the_plot_is_written(tmp_path):
    rows = [_row(5, "a"), _row(20, "a")]
    del rows[0]["persisted"]["load_alone_ratio"]  # a row from before that figure existed
    plot({"rows": rows}, tmp_path / "restart.png")
    assert (tmp_path / "restart.png").stat().st_size > 1000
