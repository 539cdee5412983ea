"""Quality through the sessions API: exact-match accuracy per press x ratio, codec none and int8.

For every (press, ratio) and document: POST /v1/sessions with the document under that press,
ask every question of the document on the session (greedy), then - when int8 is on - quantize
the stored cache in place and ask the same questions again, then delete the session. The
uncompressed baseline is the press ``none``. Jobs run on ``workers`` threads so both replicas
stay busy, but one session load at a time (a lock), so loads never queue in a PrefillActor.

int8 path (recorded as ``int8_path``): the admin route ``POST /admin/compress {"session_id",
"codec": "int8"}`` (its event polled to done); on an app without it, when this process started
the app, the replica deployment's ``admin("quantize", ...)`` over a Serve handle (the same
DecodeActor.quantize the route ends in); else int8 is skipped and says why.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from benchmarks.press_grid import press_spec
from benchmarks.quality_tasks import QADocument, exact_match
from benchmarks.serving import capacity
from benchmarks.serving.admin import has_route, run_action
from benchmarks.serving.app import Target
from benchmarks.serving.retry import with_retries

STOP = (".", "\n")


def probe_int8_path(target: Target) -> tuple[str | None, str]:
    """(path name or None, why): how this target can quantize a stored session to int8."""
    if has_route(target.client, "/admin/compress"):
        return "admin_http", "POST /admin/compress {session_id, codec: int8}, event polled"
    if target.owns_cluster:
        return "replica_handle", ("POST /admin/compress is not routed by this app; quantizing through the "
                                  "replica's admin('quantize') Serve handle (DecodeActor.quantize)")
    return None, "POST /admin/compress is not routed and there is no Ray access (--url): int8 skipped"


def quantize(target: Target, path: str, session: dict, timeout_s: float = 300.0) -> dict:
    """Quantize ``session``'s stored cache to int8 in place; returns ``{"stored_bytes", "codec"}``."""
    if path == "admin_http":
        event = run_action(target.client, "/admin/compress", {"session_id": session["id"], "codec": "int8"},
                           timeout_s)
        return event["detail"]["result"]
    handle = target.replica_handle(session["replica"])
    return handle.admin.remote("quantize", session["id"], codec="int8").result(timeout_s=timeout_s)


def _ask_all(target: Target, doc: QADocument, session_id: str, max_tokens: int) -> list[dict[str, Any]]:
    rows = []
    for item in doc.items:
        answer = target.client.ask([{"role": "user", "content": item.question}], session_id=session_id,
                                   max_tokens=max_tokens, stop=STOP)
        rows.append({"doc_id": doc.doc_id, "task": doc.task, "depth": item.depth, "question": item.question,
                     "expected": item.answer, "answer": answer.text, "correct": exact_match(answer.text, item.answer,
                                                                                           item.kind),
                     "ttft_s": round(answer.ttft_s, 4)})
    return rows


def run_job(target: Target, doc: QADocument, label: str, ratio: float, int8_path: str | None,
            max_tokens: int, capacity_budget_bytes: int | None = None,
            load_lock: threading.Lock | None = None) -> dict[str, Any]:
    """One session: load, ask (codec none), [fill a pool with its exported cache], quantize + ask
    again (int8), delete. ``load_lock``: held during the load, so that loads never queue behind
    each other in a replica's PrefillActor (see retry.py for why that matters)."""
    spec = press_spec(label, ratio)
    with load_lock or contextlib.nullcontext():
        session = target.client.create_session(doc.context, spec)
    try:
        info = {"press": label, "compression_ratio": ratio, "spec": spec, "doc_id": doc.doc_id, "task": doc.task,
                "replica": session["replica"], "tokens_read": session["tokens_read"],
                "tokens_kept": session["tokens_kept"], "bytes_stored": session["bytes_stored"],
                "load_s": round(session["client_load_s"], 3)}
        answers = {"none": _ask_all(target, doc, session["id"], max_tokens)}
        if capacity_budget_bytes:
            info["capacity"] = capacity.measure_session(target, session, capacity_budget_bytes)
        if int8_path is not None:
            stored = quantize(target, int8_path, session)
            info["bytes_stored_int8"] = stored["stored_bytes"]
            answers["int8"] = _ask_all(target, doc, session["id"], max_tokens)
        info["answers"] = answers
        return info
    finally:
        target.client.delete_session(session["id"], missing_ok=True)


def aggregate(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy per (press, ratio, codec), overall and per task, with the uncompressed baseline's ratio."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for job in jobs:
        for codec, rows in job["answers"].items():
            groups[(job["press"], job["compression_ratio"], codec)].extend(rows)
    out = []
    for (label, ratio, codec), rows in sorted(groups.items(), key=lambda kv: (kv[0][0] != "none", kv[0])):
        by_task: dict[str, list[bool]] = defaultdict(list)
        for row in rows:
            by_task[row["task"]].append(row["correct"])
        out.append({"press": label, "compression_ratio": ratio, "codec": codec, "questions": len(rows),
                    "correct": sum(r["correct"] for r in rows), "accuracy": sum(r["correct"] for r in rows) / len(rows),
                    "accuracy_by_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())}})
    base = {row["codec"]: row["accuracy"] for row in out if row["press"] == "none"}
    for row in out:
        reference = base.get(row["codec"], base.get("none"))
        row["relative_to_uncompressed"] = row["accuracy"] / reference if reference else None
    return out


def evaluate(target: Target, documents: list[QADocument], presses: list[str], ratios: list[float],
             int8: bool = True, workers: int = 2, max_tokens: int = 24, capacity_budget_bytes: int | None = None,
             int8_ratios: list[float] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole sweep; returns ``{"int8_path", "int8_note", "jobs", "accuracy"}``.

    ``capacity_budget_bytes``: when set and the app was started here, the first document of every
    press x ratio also fills a real KVPool of that budget with its exported cache (capacity.py).
    ``int8_ratios``: ratios that get the int8 pass (None: all); the uncompressed baseline (0) is
    always included when int8 is on.
    """
    int8_path, note = probe_int8_path(target) if int8 else (None, "int8 disabled (--no-int8)")
    log(f"int8: {int8_path} ({note})")
    configs = [("none", 0.0)] + [(p, r) for p in presses for r in ratios if r > 0 and p != "none"]
    work = [(doc, label, ratio) for label, ratio in configs for doc in documents]
    jobs: list[dict[str, Any]] = []
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        fill = capacity_budget_bytes if target.owns_cluster else None
        def int8_for(ratio: float) -> str | None:
            wanted = int8_ratios is None or ratio == 0 or any(abs(ratio - r) < 1e-9 for r in int8_ratios)
            return int8_path if wanted else None

        load_lock = threading.Lock()

        def job(doc: QADocument, label: str, ratio: float) -> dict[str, Any]:
            return with_retries(lambda: run_job(target, doc, label, ratio, int8_for(ratio), max_tokens,
                                                fill if doc is documents[0] else None, load_lock),
                                target, f"quality {label} r={ratio} {doc.doc_id}", retries, log=log)

        retries: list[dict] = []
        futures = {pool.submit(job, doc, label, ratio): (doc, label, ratio) for doc, label, ratio in work}
        for future in concurrent.futures.as_completed(futures):
            doc, label, ratio = futures[future]
            job = future.result()
            jobs.append(job)
            correct = {codec: sum(r["correct"] for r in rows) for codec, rows in job["answers"].items()}
            log(f"quality {len(jobs)}/{len(work)} {label} r={ratio} {doc.doc_id}: {correct} of {len(doc.items)} "
                f"({job['tokens_read']} read, {job['tokens_kept']} kept, {time.perf_counter() - start:.0f} s)")
    jobs.sort(key=lambda j: (j["press"], j["compression_ratio"], j["doc_id"]))
    return {"int8_path": int8_path, "int8_note": note, "int8_ratios": int8_ratios, "retries": retries,
            "configs": [list(c) for c in configs],
            "documents": [d.to_json() for d in documents], "jobs": jobs, "accuracy": aggregate(jobs),
            "seconds": round(time.perf_counter() - start, 1)}
