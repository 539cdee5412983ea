"""The peer benchmark (benchmarks/peer_llamacpp.py) without servers: its summary, verdicts, docs
table, the llama.cpp command and its documents; and it imports without llama_cpp installed."""

from __future__ import annotations

import importlib
import sys

from benchmarks.peer_report import markdown_table, summarize


def measured(decode: dict[int, float], cold: float, again: float, turns: list[float], load: float = 0.0) -> dict:
    return {"decode": [{"concurrency": c, "aggregate_tokens_per_s": v} for c, v in decode.items()],
            "document": {"cold": {"ttft_s": cold, "load_s": load}, "again": {"ttft_s": again, "load_s": 0.0}},
            "turns": [{"ttft_s": 99.0, "round": 0}] * 3 + [{"ttft_s": t, "round": 1} for t in turns]}


def test_summary_ratios_and_verdicts():
    raw = {"kvfleet": measured({1: 5.0, 16: 30.0}, cold=20.0, again=0.5, turns=[0.4, 0.6, 0.5], load=19.0),
           "llama.cpp": measured({1: 50.0, 16: 40.0}, cold=4.0, again=1.0, turns=[2.0, 1.0, 3.0])}
    s = summarize(raw)
    assert s["servers"]["kvfleet"]["decode_tokens_per_s"] == {"1": 5.0, "16": 30.0}
    assert s["servers"]["kvfleet"]["ttft_turns_s"] == [0.4, 0.6, 0.5]  # round 0 (the first reads) left out
    assert s["servers"]["llama.cpp"]["ttft_turns_median_s"] == 2.0
    assert s["ratios"]["decode_x_at_1"] == 0.1 and s["ratios"]["decode_x_at_16"] == 0.75
    assert s["ratios"]["ttft_cold_x"] == 0.2 and s["ratios"]["ttft_again_x"] == 2.0
    assert s["ratios"]["ttft_turns_median_x"] == 4.0
    assert s["kvfleet_ahead"] == {"decode_at_16": False, "ttft_stored": True}


def test_summary_with_one_server_or_missing_figures_has_no_verdict():
    only = summarize({"kvfleet": measured({16: 3.0}, 1.0, 1.0, [1.0])})
    assert only["kvfleet_ahead"] == {} and only["ratios"] == {}
    raw = {"kvfleet": measured({1: 5.0}, 2.0, 1.0, []), "llama.cpp": measured({1: 6.0}, 2.0, 1.0, [])}
    verdict = summarize(raw)["kvfleet_ahead"]
    assert verdict["decode_at_16"] is None and verdict["ttft_stored"] is False


def test_markdown_table_rows():
    raw = {"kvfleet": measured({1: 5.0, 8: 12.0, 16: 30.0}, 20.0, 0.5, [0.5], load=19.5),
           "llama.cpp": measured({1: 50.0, 8: 45.0, 16: 40.0}, 4.0, 1.0, [2.0])}
    table = markdown_table({"summary": summarize(raw)})
    lines = table.splitlines()
    assert lines[0].startswith("| | kvfleet | llama.cpp server |")
    assert "| aggregate decode, 16 concurrent streams | 30.0 tok/s | 40.0 tok/s | 0.75x |" in lines
    assert any("session load 19.50 s" in line and "20.00 s" in line for line in lines)
    assert len(lines) == 2 + 3 + 3


def test_benchmark_imports_without_llama_cpp(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    sys.modules.pop("benchmarks.peer_llamacpp", None)
    module = importlib.import_module("benchmarks.peer_llamacpp")
    command = module.llama_server_command("/m.gguf", 8360, threads=2, n_ctx=8192, cache_bytes=1 << 30)
    flags = dict(zip(command[3::2], command[4::2]))
    assert command[1:3] == ["-m", "llama_cpp.server"]
    assert flags["--host"] == "127.0.0.1" and flags["--cache"] == "true" and flags["--n_threads"] == "2"
    assert flags["--interrupt_requests"] == "false"
    text, questions = module.document(3000, 7)
    assert text.lower().count("vault 7") == 3 and "1259" in text and len(questions) == 4
    assert module.in_turn(["a", "b"], 1) == ["b", "a"]
