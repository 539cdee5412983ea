"""Latency through HTTP: TTFT and tokens/s for session questions vs plain re-sent contexts.

Series (each request: greedy, ``max_tokens`` tokens with ``ignore_eos`` so every request decodes
the same number of tokens; round ``r`` asks every client's document question ``r``):

- ``session``: the question on a stored session (the session's prefill is not timed).
- ``plain_full``: the same question with the whole context re-sent in a plain request (one user
  message = context + question). The prompt differs from every earlier one (new question), so
  no stored prefix covers it: the replica prefills it all (compressed with ``plain.press`` above
  ``plain.compression_threshold_tokens``).
- ``plain_prefix``: a plain request ``[system: context, user: question]`` whose context prefix
  was sent before (two warm-up requests per context, one per replica of the round-robin), so it
  should hit the replica's compressed-prefix index and prefill only the question.

Honesty check: the replicas' prefix-index counters (``GET /admin/stats``, ``prefix_cache``) are
read around every batch; each row records the hits and misses its requests caused (concurrent
batches never overlap). If warm-up requests do not hit the index, ``plain_prefix`` stays empty
and ``plain_prefix_note`` says why.

For each concurrency ``c`` every client has its own document and session; a round sends ``c``
concurrent requests of one series, and the series alternate within a round (order rotating), so
a slow phase of the shared machine hits every series alike.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable

from benchmarks.quality_tasks import QADocument, needle_document
from benchmarks.serving.app import Target
from benchmarks.serving.client import Answer
from benchmarks.serving.retry import is_restart_symptom, wait_until_healthy, with_retries
from benchmarks.timing import summarize

SERIES = ("session", "plain_full", "plain_prefix")


def question(doc: QADocument, round_index: int) -> str:
    """Round ``r``'s question: the documents' questions in turn, numbered once they repeat."""
    text = doc.items[round_index % len(doc.items)].question
    return text if round_index < len(doc.items) else f"Question {round_index + 1}: {text}"


def messages(series: str, doc: QADocument, round_index: int) -> list[dict]:
    q = question(doc, round_index)
    if series == "session":
        return [{"role": "user", "content": q}]
    if series == "plain_full":
        return [{"role": "user", "content": f"{doc.context}\n\n{q}"}]
    return [{"role": "system", "content": doc.context}, {"role": "user", "content": q}]


def prefix_counters(target: Target) -> dict[str, int] | None:
    """Sum over replicas of the prefix index's hits and misses (None without /admin/stats)."""
    response = target.client.http.get("/admin/stats", timeout=60)
    if response.status_code >= 400:
        return None
    totals = {"hits": 0, "misses": 0}
    for stats in response.json().get("replicas", {}).values():
        for key in totals:
            totals[key] += int((stats.get("prefix_cache") or {}).get(key, 0))
    return totals


def _delta(before: dict | None, after: dict | None) -> dict[str, int] | None:
    return None if before is None or after is None else {k: after[k] - before[k] for k in before}


def _ask(target: Target, series: str, doc: QADocument, session_id: str, round_index: int, max_tokens: int) -> Answer:
    return target.client.ask(messages(series, doc, round_index), session_id=session_id if series == "session" else None,
                             max_tokens=max_tokens, ignore_eos=True)


def warm_prefixes(target: Target, docs: list[QADocument], replicas: int) -> dict[str, int] | None:
    """Send each document's ``[system: context]`` prefix ``replicas`` times in a row (round-robin
    spreads them over the replicas); returns the index counters' change."""
    before = prefix_counters(target)
    for doc in docs:
        for i in range(replicas):
            target.client.ask(messages("plain_prefix", doc, 100 + i), max_tokens=1)
    return _delta(before, prefix_counters(target))


def probe_prefix_index(target: Target, doc: QADocument, replicas: int) -> tuple[bool, str]:
    """Whether a plain request whose context prefix was sent before hits the prefix index."""
    warm = warm_prefixes(target, [doc], replicas)
    if warm is None:
        return False, "cannot tell: GET /admin/stats is not available, so index hits cannot be counted"
    before = prefix_counters(target)
    target.client.ask(messages("plain_prefix", doc, 0), max_tokens=1)
    hits = _delta(before, prefix_counters(target))["hits"]
    if hits > 0:
        return True, "plain requests reuse stored compressed prefixes (prefix-index hit counted in /admin/stats)"
    return False, ("not wired: a plain request whose context prefix was sent before caused no prefix-index hit "
                   f"(warm-up counters {warm})")


def _row(series: str, concurrency: int, target_tokens: int, context_tokens: int, answers: list[Answer],
         index: dict[str, int] | None) -> dict[str, Any]:
    decode = [a.decode_tokens_per_s for a in answers if a.decode_tokens_per_s is not None]
    return {"series": series, "concurrency": concurrency, "target_tokens": target_tokens,
            "context_tokens": context_tokens, "requests": len(answers),
            "ttft": summarize([a.ttft_s for a in answers]), "total": summarize([a.total_s for a in answers]),
            "decode_tokens_per_s": summarize(decode, unit="tok_s"),
            "request_tokens_per_s": summarize([a.tokens_per_s for a in answers], unit="tok_s"),
            "completion_tokens": sum(a.completion_tokens for a in answers), "prefix_index": index}


def measure(target: Target, context_tokens: int, concurrency: int, rounds: int, press: dict,
            count: Callable[[str], int], max_tokens: int = 16, prefix_ok: bool = False, replicas: int = 2,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """``rounds`` interleaved rounds of every series at ``concurrency`` clients; one row per series."""
    docs = [needle_document(seed=1000 * concurrency + context_tokens + i, target_tokens=context_tokens, count=count)
            for i in range(concurrency)]
    series = [s for s in SERIES if s != "plain_prefix" or prefix_ok]
    answers: dict[str, list[Answer]] = {s: [] for s in series}
    index: dict[str, dict[str, int] | None] = {s: {"hits": 0, "misses": 0} for s in series}
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        sessions: list[dict] = []
        try:
            for doc in docs:  # one at a time: queued loads starve a PrefillActor's health check (retry.py)
                sessions.append(target.client.create_session(doc.context, press))
            if prefix_ok:
                warm_prefixes(target, docs, replicas)
            for round_index in range(rounds):
                shift = round_index % len(series)
                for name in series[shift:] + series[:shift]:
                    before, start = prefix_counters(target), time.perf_counter()
                    batch = list(pool.map(lambda ds: _ask(target, name, ds[0], ds[1]["id"], round_index, max_tokens),
                                          zip(docs, sessions)))
                    delta = _delta(before, prefix_counters(target))
                    index[name] = None if delta is None or index[name] is None else {
                        k: index[name][k] + delta[k] for k in delta}
                    answers[name].extend(batch)
                    log(f"latency {context_tokens} tok c={concurrency} round {round_index + 1}/{rounds} {name}: "
                        f"median ttft {sorted(a.ttft_s for a in batch)[len(batch) // 2]:.3f} s "
                        f"(batch {time.perf_counter() - start:.1f} s, prefix index {delta})")
        finally:
            for session in sessions:
                target.client.delete_session(session["id"], missing_ok=True)
    read = sessions[0]["tokens_read"]
    rows = [_row(name, concurrency, context_tokens, read, values, index[name]) for name, values in answers.items()]
    if not prefix_ok:
        rows.append(_row("plain_prefix", concurrency, context_tokens, read, [], None))
    return rows


def run(target: Target, lengths: list[int], concurrencies: list[int], rounds: int, press: dict,
        count: Callable[[str], int], max_tokens: int = 16, replicas: int = 2,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every concurrency at the shortest length, then concurrency 1 at the longer lengths."""
    probe_doc = needle_document(seed=999, target_tokens=min(lengths), count=count)
    prefix_ok, note = probe_prefix_index(target, probe_doc, replicas)
    log(f"plain_prefix: {note}")
    rows: list[dict[str, Any]] = []
    shortest = min(lengths)
    plan = ([(shortest, c) for c in sorted(set(concurrencies) | {1})]
            + [(length, 1) for length in sorted(lengths) if length != shortest])  # long prefills last
    start = time.perf_counter()
    retries: list[dict] = []
    failed: list[dict] = []
    for length, concurrency in plan:
        try:
            rows += with_retries(lambda: measure(target, length, concurrency, rounds, press, count, max_tokens,
                                                 prefix_ok, replicas, log),
                                 target, f"latency {length} tok c={concurrency}", retries, attempts=2, log=log)
        except Exception as exc:  # noqa: BLE001 - recorded in the result and the report, then the next point
            if not is_restart_symptom(exc):
                raise
            failed.append({"target_tokens": length, "concurrency": concurrency, "error": str(exc)[:300]})
            log(f"latency {length} tok c={concurrency} FAILED after retries: {exc}")
            wait_until_healthy(target)
    for row in rows:
        if row["series"] == "session" and row["requests"]:
            same = {r["series"]: r for r in rows if r["target_tokens"] == row["target_tokens"]
                    and r["concurrency"] == row["concurrency"]}
            stored = row["ttft"]["median_s"]
            for other in ("plain_full", "plain_prefix"):
                value = same[other]["ttft"]["median_s"]
                row[f"{other}_over_session_ttft_x"] = value / stored if stored and value else None
    return {"plain_prefix_wired": prefix_ok, "plain_prefix_note": note, "press": press, "max_tokens": max_tokens,
            "rows": rows, "retries": retries, "failed": failed, "seconds": round(time.perf_counter() - start, 1)}
