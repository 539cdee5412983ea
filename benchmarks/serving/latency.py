"""Latency through HTTP: TTFT and tokens/s for session questions vs plain re-sent contexts.

Series (each request: greedy, ``max_tokens`` tokens with ``ignore_eos`` so every request decodes
the same number of tokens):

- ``session``: a question on a stored session (the session's prefill is not timed).
- ``plain_full``: the same question with the whole context re-sent in a plain request (one user
  message = context + question): the replica prefills it all again (compressing it with
  ``plain.press`` when it is above ``plain.compression_threshold_tokens``, as configured).
- ``plain_prefix``: a plain request whose context was already sent once, i.e. one that should hit
  the compressed-prefix index. Measured only if the app reports it: after a warm-up, a plain
  request must come back with ``usage.prompt_tokens_details.cached_tokens > 0``; otherwise the
  series stays empty and ``plain_prefix_note`` says why.

For each concurrency ``c`` every client has its own document and session; a round sends ``c``
concurrent requests of one series, and rounds of the series alternate (order rotating), so a
slow phase of the shared machine hits every series alike.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable

from benchmarks.quality_tasks import QADocument, needle_document
from benchmarks.serving.app import Target
from benchmarks.serving.client import Answer
from benchmarks.timing import summarize

QUESTION = "What is the access code for room {room}?"
SERIES = ("session", "plain_full", "plain_prefix")


def _question(doc: QADocument) -> str:
    return doc.items[len(doc.items) // 2].question


def _plain_messages(doc: QADocument) -> list[dict]:
    return [{"role": "user", "content": f"{doc.context}\n\n{_question(doc)}"}]


def _request(target: Target, series: str, doc: QADocument, session_id: str, max_tokens: int) -> Answer:
    if series == "session":
        return target.client.ask([{"role": "user", "content": _question(doc)}], session_id=session_id,
                                 max_tokens=max_tokens, ignore_eos=True)
    return target.client.ask(_plain_messages(doc), max_tokens=max_tokens, ignore_eos=True)


def probe_prefix_index(target: Target, doc: QADocument, max_tokens: int) -> tuple[bool, str]:
    """Whether a repeated plain request is served from a stored compressed prefix (cached_tokens > 0)."""
    target.client.ask(_plain_messages(doc), max_tokens=1)
    answer = target.client.ask(_plain_messages(doc), max_tokens=max_tokens)
    if answer.cached_tokens > 0:
        return True, f"plain requests hit the prefix index ({answer.cached_tokens} cached tokens)"
    return False, ("not wired: a repeated plain request reports cached_tokens=0 (the replica prefills every "
                   "plain prompt; the compressed-prefix index is not consulted for plain requests yet)")


def _row(series: str, concurrency: int, context_tokens: int, answers: list[Answer]) -> dict[str, Any]:
    decode = [a.decode_tokens_per_s for a in answers if a.decode_tokens_per_s is not None]
    return {"series": series, "concurrency": concurrency, "context_tokens": context_tokens, "requests": len(answers),
            "ttft": summarize([a.ttft_s for a in answers]), "total": summarize([a.total_s for a in answers]),
            "decode_tokens_per_s": summarize(decode, unit="tok_s"),
            "request_tokens_per_s": summarize([a.tokens_per_s for a in answers], unit="tok_s"),
            "completion_tokens": sum(a.completion_tokens for a in answers)}


def measure(target: Target, context_tokens: int, concurrency: int, rounds: int, press: dict,
            count: Callable[[str], int], max_tokens: int = 16, prefix_ok: bool = False,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """``rounds`` interleaved rounds of every series at ``concurrency`` clients; one row per series."""
    docs = [needle_document(seed=1000 * concurrency + i, target_tokens=context_tokens, count=count)
            for i in range(concurrency)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(concurrency, 1)) as pool:
        sessions = list(pool.map(lambda d: target.client.create_session(d.context, press), docs))
        series = [s for s in SERIES if s != "plain_prefix" or prefix_ok]
        answers: dict[str, list[Answer]] = {s: [] for s in series}
        try:
            if prefix_ok:  # the first plain request of each context stores its prefix
                list(pool.map(lambda d: target.client.ask(_plain_messages(d), max_tokens=1), docs))
            for round_index in range(rounds):
                shift = round_index % len(series)
                for name in series[shift:] + series[:shift]:
                    kind = "plain_full" if name == "plain_prefix" else name
                    start = time.perf_counter()
                    batch = list(pool.map(lambda ds: _request(target, kind, ds[0], ds[1]["id"], max_tokens),
                                          zip(docs, sessions)))
                    answers[name].extend(batch)
                    log(f"latency {context_tokens} tok c={concurrency} round {round_index + 1}/{rounds} {name}: "
                        f"median ttft {sorted(a.ttft_s for a in batch)[len(batch) // 2]:.3f} s "
                        f"(batch {time.perf_counter() - start:.1f} s)")
        finally:
            for session in sessions:
                target.client.delete_session(session["id"])
    read = sessions[0]["tokens_read"]
    rows = [_row(name, concurrency, read, values) for name, values in answers.items()]
    if not prefix_ok:
        rows.append(_row("plain_prefix", concurrency, read, []))
    return rows


def run(target: Target, lengths: list[int], concurrencies: list[int], rounds: int, press: dict,
        count: Callable[[str], int], max_tokens: int = 16, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Concurrency 1 at every length in ``lengths``; every other concurrency at the shortest length."""
    probe_doc = needle_document(seed=999, target_tokens=min(lengths), count=count)
    prefix_ok, note = probe_prefix_index(target, probe_doc, max_tokens)
    log(f"plain_prefix: {note}")
    rows: list[dict[str, Any]] = []
    plan = [(length, 1) for length in lengths] + [(min(lengths), c) for c in concurrencies if c != 1]
    start = time.perf_counter()
    for length, concurrency in plan:
        rows += measure(target, length, concurrency, rounds, press, count, max_tokens, prefix_ok, log)
    for length in sorted({r["context_tokens"] for r in rows}):
        for c in sorted({r["concurrency"] for r in rows if r["context_tokens"] == length}):
            by = {r["series"]: r for r in rows if r["context_tokens"] == length and r["concurrency"] == c}
            stored, plain = by["session"]["ttft"]["median_s"], by["plain_full"]["ttft"]["median_s"]
            by["session"]["plain_full_over_session_ttft_x"] = plain / stored if stored else None
    return {"plain_prefix_wired": prefix_ok, "plain_prefix_note": note, "press": press, "max_tokens": max_tokens,
            "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
