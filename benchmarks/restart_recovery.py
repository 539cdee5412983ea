"""Restart benchmark (issue 27): time until every session answers after a restart of the whole
application, by number of sessions, with durable caches read back vs recomputed - same run.

    python benchmarks/restart_recovery.py [--sizes 5,20,50] [--port 8327] [--merge]

``--merge`` keeps the rows of other sizes already in the JSON, so the sizes can be run as separate
parts (each its own cluster, loading its own sessions; each part compares persisted with
recomputed in the same run), e.g. one part per size, each under the e2e lock for a bounded time.
The documents are short (``tests.conftest.document(6..15)``, about 100-270 tokens: filler with
planted facts) to keep a run within minutes on a 2-core machine; the recomputed time grows with
document length, the persisted one with cache bytes read.

One Ray cluster, one application (2 replicas, knorm at 0.5 as tests/serving.small_args has it),
restarted again and again on the same SQLite store and cache directory. Sessions accumulate:
load up to the next size, then restart with ``replicas.durable.enabled: false`` (every session is
re-prefilled: "recomputed") and again with it on (every session is read back: "persisted").
After each restart, from the moment ``/v1/models`` answers, every session is asked at once
(temperature 0) and the time until the last answer is taken; answers must equal the ones before
the restarts. A session load runs during each recovery and is compared to a load on a just
restarted application with nothing to recover (both run on freshly started replicas; the ratio,
not the seconds, is the figure to compare across machines). That load competes with the questions
asked at the same moment, so it is also compared with a load under the same questions on a just
restarted application whose sessions are all back (``busy_idle_load_s``; ``load_vs_busy_ratio``:
what the recovery itself adds under that live traffic). And after each measured restart the application is restarted once more
and three loads are timed one after another, alone, while the recovery runs in the background (no
questions), with the largest recovery backlog (sessions waiting or running) seen meanwhile:
``load_alone_ratio`` (their mean).
Last, replica-0's decode actor is SIGKILLed and three loads are timed one after another at once,
alone, against three loads on the same application after that recovery (``sigkill``, means).

Writes benchmarks/results/restart_recovery.json and .png. Run it under the e2e lock, nice'd.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import RESULTS_DIR, provenance  # noqa: E402
from tests.conftest import document  # noqa: E402
from tests.e2e.test_restart_recovery import answering, ask_all, wait_for  # noqa: E402
from tests.serving import create_session, ray_cluster, serve_app, small_args  # noqa: E402

NAME = "restartbench"


def _context(i: int) -> str:
    return document(6 + i % 10) + f" (copy {i})"


def _timed_load(base: str, i: int) -> float:
    start = time.perf_counter()
    create_session(base, _context(10_000 + i))
    return time.perf_counter() - start


def _restart(args: dict, port: int, durable: bool) -> tuple[str, float]:
    from ray import serve

    from deployments.app import build_app

    args = copy.deepcopy(args)
    args["replicas"]["durable"]["enabled"] = durable
    base = f"http://127.0.0.1:{port}/{NAME}"
    serve.delete(NAME)
    wait_for(lambda: not answering(base), 120, "the old application to go")
    serve.run(build_app(args), name=NAME, route_prefix=f"/{NAME}", blocking=False)
    wait_for(lambda: answering(base), 900, "/v1/models after the restart")
    return base, time.monotonic()


def _measure(args: dict, port: int, durable: bool, answers: dict[str, str], load_index: int) -> dict:
    """Restart, then ask every session at once while one new session loads."""
    from tests.e2e.test_restart_recovery import health

    base, models_at = _restart(args, port, durable)
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(_timed_load, base, load_index)
        replies = ask_all(base, list(answers))
        all_answered_s = time.monotonic() - models_at
        load_s = load.result()
    codes = [r.status_code for r in replies.values()]
    same = sum(r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == answers[s]
               for s, r in replies.items())
    recovery = health(base)["recovery"]
    return {"all_answered_s": round(all_answered_s, 3), "load_during_recovery_s": round(load_s, 3),
            "same_answers": same, "status_409": codes.count(409), "errors": sum(c != 200 for c in codes),
            "reads": recovery["done"].get("read", 0), "rebuilds": recovery["done"].get("rebuild", 0)}


def _busy_baseline(args: dict, port: int, answers: dict[str, str], load_index: int) -> float:
    """The load with the questions, nothing to recover: restart (durable caches on), ask every
    session once (each is read back: the recovery ends), then time a load while every session is
    asked again at once - the same live traffic as ``_measure``'s, on replicas as freshly started."""
    base, _ = _restart(args, port, True)
    ask_all(base, list(answers))
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(_timed_load, base, load_index)
        ask_all(base, list(answers))
        return load.result()


ALONE_LOADS = 3  # loads timed one after another during a recovery (no questions): their mean is the figure


def _load_alone(args: dict, port: int, durable: bool, load_index: int) -> dict:
    """Restart, then time ``ALONE_LOADS`` loads one after another at once, with no questions asked:
    recovery in the background only. Records the largest recovery backlog seen while they ran (0:
    the recovery was over, or had not started, so those loads did not overlap it)."""
    from tests.e2e.test_restart_recovery import health

    base, _ = _restart(args, port, durable)
    timed = [_load_watching_recovery(base, load_index + 100 * i) for i in range(ALONE_LOADS)]
    start = time.monotonic()
    while _backlog(health(base)["recovery"]) and time.monotonic() - start < 300:
        time.sleep(0.5)  # let the background recovery finish before the next restart
    loads_s = [load_s for load_s, _ in timed]
    return {"load_alone_during_recovery_s": round(sum(loads_s) / len(loads_s), 3),
            "loads_alone_s": [round(x, 3) for x in loads_s], "backlog_during_load": max(b for _, b in timed)}


def _load_watching_recovery(base: str, load_index: int) -> tuple[float, int]:
    """Time one load; also the largest recovery backlog (waiting + running) seen while it ran (by
    polling ``/admin/health`` every 0.2 s: the idle loads they are compared with are timed so too)."""
    from tests.e2e.test_restart_recovery import health

    seen = [_backlog(health(base)["recovery"])]
    with ThreadPoolExecutor(max_workers=1) as pool:
        load = pool.submit(_timed_load, base, load_index)
        while not load.done():
            seen.append(_backlog(health(base)["recovery"]))
            time.sleep(0.2)
        return load.result(), max(seen)


SIGKILL_LOADS = 3  # loads timed one after another right after the kill (and again once it is over)
# (``_context(i)``'s length repeats every 10 indices: the idle loads read documents as long as the others)


def _sigkill_load(base: str, load_index: int) -> dict:
    """SIGKILL replica-0's decode actor, then time ``SIGKILL_LOADS`` loads one after another at once
    (no questions), while the replica starts a new decode actor (a new process imports torch and
    loads the model) and its sessions are read back. Compared with as many loads on the same
    application once that recovery is over (``idle_load_s``); means of each."""
    import os
    import signal

    from tests.e2e.test_restart_recovery import health

    pid = _decode_pid(base)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    timed = [_load_watching_recovery(base, load_index + i) for i in range(SIGKILL_LOADS)]
    loads_s = [load_s for load_s, _ in timed]
    while time.monotonic() - killed < 300 and (_backlog(health(base)["recovery"]) or _decode_pid(base) in (None, pid)):
        time.sleep(0.5)  # until the actor is back and its sessions are read
    recovered_s = time.monotonic() - killed
    idle_s = [_load_watching_recovery(base, load_index + 10 + i)[0]  # same lengths, other copies, same polling
              for i in range(SIGKILL_LOADS)]
    load_s, idle_load_s = sum(loads_s) / len(loads_s), sum(idle_s) / len(idle_s)
    return {"load_s": round(load_s, 3), "idle_load_s": round(idle_load_s, 3),
            "load_ratio": round(load_s / idle_load_s, 2), "loads_s": [round(x, 3) for x in loads_s], "idle_loads_s": [round(x, 3) for x in idle_s],
            "backlog_during_load": max(backlog for _, backlog in timed), "recovered_s": round(recovered_s, 2)}


def _decode_pid(base: str) -> int | None:
    """replica-0's decode actor process id, None while it does not answer."""
    import httpx

    try:
        return httpx.get(f"{base}/admin/stats", timeout=30).json()["replicas"]["replica-0"].get("pid")
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None


def _backlog(recovery: dict) -> int:
    return recovery["waiting"] + recovery["running"]


def _write(result: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "restart_recovery.json").write_text(json.dumps(result, indent=2))
    if result["rows"]:
        plot(result, RESULTS_DIR / "restart_recovery.png")


def run(sizes: list[int], port: int, head: dict, kept: list[dict] | None = None) -> dict:
    """Measure ``sizes`` (ascending, one cluster) and return the result; ``kept``: rows of other
    sizes from an earlier part, written along (``--merge``)."""
    args = small_args()
    kept = kept or []
    rows: list[dict] = []
    answers: dict[str, str] = {}
    with ray_cluster(num_cpus=4), serve_app(port, args, name=NAME, route_prefix=f"/{NAME}", timeout_s=900) as base:
        # the baseline a load during recovery is compared with: a load on a just-restarted app with
        # nothing to recover (a fresh app's first loads are slower than later ones on a warm one)
        _restart(args, port, True)
        # timed as the loads during recovery are: polling /admin/health while they run (it costs CPU too)
        cold_idle_load_s = sum(_load_watching_recovery(base, 100 * i)[0] for i in range(ALONE_LOADS)) / ALONE_LOADS
        for size in sizes:
            for i in range(len(answers), size):
                session = create_session(base, _context(i))
                reply = ask_all(base, [session["id"]])[session["id"]]
                answers[session["id"]] = reply.json()["choices"][0]["message"]["content"]
            idle_load_s = _timed_load(base, 2 * size)
            time.sleep(3.0)  # write-behind: let the last caches reach the disk
            row = {"sessions": size, "warm_idle_load_s": round(idle_load_s, 3),
                   "cold_idle_load_s": round(cold_idle_load_s, 3)}
            for mode, durable in (("recomputed", False), ("persisted", True)):
                row[mode] = _measure(args, port, durable, answers, 2 * size + int(durable) + 1)
                row[mode]["load_ratio"] = round(row[mode]["load_during_recovery_s"] / cold_idle_load_s, 2)
                row[mode].update(_load_alone(args, port, durable, 5_000 + 2 * size + int(durable)))
                row[mode]["load_alone_ratio"] = round(row[mode]["load_alone_during_recovery_s"] / cold_idle_load_s, 2)
            row["busy_idle_load_s"] = round(_busy_baseline(args, port, answers, 3_000 + 2 * size), 3)
            for mode in ("recomputed", "persisted"):  # the recovery's own cost under the same live traffic
                row[mode]["load_vs_busy_ratio"] = round(row[mode]["load_during_recovery_s"] / row["busy_idle_load_s"], 2)
            row["speedup"] = round(row["recomputed"]["all_answered_s"] / row["persisted"]["all_answered_s"], 2)
            row["sigkill"] = _sigkill_load(base, 7_000 + 20 * size)  # the app runs with durable caches on
            rows.append(row)
            print(json.dumps(row), flush=True)
            _write({**head, "rows": _merged(kept, rows), "complete": len(rows) == len(sizes)})  # cut short: rows kept
    return {**head, "rows": _merged(kept, rows), "complete": True}


def _merged(kept: list[dict], rows: list[dict]) -> list[dict]:
    new = {r["sessions"] for r in rows}
    return sorted([r for r in kept if r["sessions"] not in new] + rows, key=lambda r: r["sessions"])


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    sizes = [r["sessions"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, marker in (("recomputed", "o"), ("persisted", "s")):
        ax[0].plot(sizes, [r[mode]["all_answered_s"] for r in rows], marker=marker, label=mode)
    ax[0].set_xlabel("sessions")
    ax[0].set_ylabel("s from /v1/models to every answer")
    ax[0].set_title("restart: every session answers again")
    ax[0].legend()
    xs = range(len(rows))
    bars = [("recomputed", "load_ratio", "recomputed, with the questions"),
            ("persisted", "load_ratio", "persisted, with the questions"),
            ("recomputed", "load_vs_busy_ratio", "recomputed, with the questions, vs the same questions"),
            ("persisted", "load_vs_busy_ratio", "persisted, with the questions, vs the same questions"),
            ("recomputed", "load_alone_ratio", "recomputed, alone"), ("persisted", "load_alone_ratio", "persisted, alone")]
    width = 0.8 / len(bars)
    for k, (mode, key, label) in enumerate(bars):
        ax[1].bar([x + (k - (len(bars) - 1) / 2) * width for x in xs], [r[mode].get(key, 0) for r in rows], width,
                  label=label)
    ax[1].axhline(1.0, color="grey", linewidth=0.8)
    ax[1].set_xticks(list(xs), [str(s) for s in sizes])
    ax[1].set_xlabel("sessions recovering")
    ax[1].set_ylabel("load time / the same load without recovery")
    ax[1].set_title("a new load during recovery")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5,20,50", help="session counts, ascending, comma-separated")
    parser.add_argument("--port", type=int, default=8327)
    parser.add_argument("--merge", action="store_true", help="keep the rows of other sizes already in the JSON")
    options = parser.parse_args(argv)
    sizes = sorted(int(s) for s in options.sizes.split(","))
    part = {"provenance": provenance({"sizes": sizes, "press": "knorm 0.5", "replicas": 2}),
            "command": "python benchmarks/restart_recovery.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    previous = RESULTS_DIR / "restart_recovery.json"
    earlier = json.loads(previous.read_text()) if options.merge and previous.exists() else {}
    head = {**part, "parts": [*earlier.get("parts", []), part]}  # provenance of every part merged
    _write(run(sizes, options.port, head, earlier.get("rows", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
