"""Fleet benchmark (issue 7): migrate a session by transfer vs rebuild (re-prefill) on the target,
and recovery time after a replica's decode actor dies with 10 sessions on it.

    python benchmarks/fleet_migration.py [--context-tokens 4000] [--sessions 10] [--repeats 3]

Writes benchmarks/results/fleet_migration.json and .png. Times are wall-clock on the machine it
runs on (recorded in the JSON); compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import document  # noqa: E402
from tests.integration.test_fleet_control import ask, replica_of, wait_event  # noqa: E402
from tests.serving import create_session, serve_app, small_args, two_node_cluster  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PORT = 8050


def _move(base: str, session_id: str, method: str) -> float:
    target = "replica-1" if replica_of(base, session_id) == "replica-0" else "replica-0"
    for _ in range(120):  # the session may still be settling from the previous move (409/400)
        start = time.perf_counter()
        event = httpx.post(f"{base}/admin/move", timeout=60,
                           json={"session_id": session_id, "target_replica": target, "method": method}).json()
        if "event_id" in event:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"move was refused: {event}")
    done = wait_event(base, event["event_id"], timeout_s=600)
    if done["status"] != "done":
        raise RuntimeError(f"move failed: {done}")
    return time.perf_counter() - start


def migration(base: str, context_tokens: int, repeats: int) -> dict:
    repeats_per_doc = max(1, context_tokens // 17)
    session = create_session(base, document(repeats_per_doc))
    answer = ask(base, session["id"])
    times: dict[str, list[float]] = {"transfer": [], "rebuild": []}
    for _ in range(repeats):  # interleaved, so load drifts hit both alike
        for method in ("transfer", "rebuild"):
            times[method].append(_move(base, session["id"], method))
    same = ask(base, session["id"]) == answer
    return {"context_tokens": session["tokens_read"], "bytes_stored": session["bytes_stored"],
            "transfer_s": times["transfer"], "rebuild_s": times["rebuild"],
            "median_transfer_s": statistics.median(times["transfer"]),
            "median_rebuild_s": statistics.median(times["rebuild"]),
            "rebuild_over_transfer": statistics.median(times["rebuild"]) / statistics.median(times["transfer"]),
            "answer_unchanged": same}


def recovery(base: str, sessions: int) -> dict:
    import ray

    created = [create_session(base, document(20 + i)) for i in range(sessions)]
    for s in created:  # put them all on replica-0
        if replica_of(base, s["id"]) != "replica-0":
            _move(base, s["id"], "transfer")
    answers = {s["id"]: ask(base, s["id"]) for s in created}
    decode = httpx.get(f"{base}/admin/stats", timeout=60).json()["replicas"]["replica-0"]["actor_ids"]["decode"]
    start = time.perf_counter()
    ray.kill(ray.get_actor(decode["name"], namespace=decode["namespace"]), no_restart=True)
    recovered = {sid: ask(base, sid, timeout_s=900) for sid in answers}
    elapsed = time.perf_counter() - start
    return {"sessions": sessions, "recovery_s": elapsed, "per_session_s": elapsed / sessions,
            "answers_unchanged": sum(recovered[s] == a for s, a in answers.items()), "sessions_lost": 0}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result["migration"]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].bar(["transfer", "rebuild (re-prefill)"], [m["median_transfer_s"], m["median_rebuild_s"]])
    ax[0].set_ylabel("seconds (median)")
    ax[0].set_title(f"move a {m['context_tokens']}-token session")
    r = result["recovery"]
    ax[1].bar(["recovery"], [r["recovery_s"]])
    ax[1].set_title(f"{r['sessions']} sessions after decode-actor death")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context-tokens", type=int, default=4000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    app_args = small_args(replicas={"count": 2, "node_resources": [{"node_a": 1}, {"node_b": 1}],
                                    "pool": {"host_budget_bytes": "1GiB"}},
                          default_press={"name": "knorm", "compression_ratio": 0.5})
    with two_node_cluster(), serve_app(PORT, app_args) as base:
        result = {"migration": migration(base, args.context_tokens, args.repeats),
                  "recovery": recovery(base, args.sessions)}
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                         "cpus": __import__("os").cpu_count()}
    result["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                          text=True).stdout.strip()
    result["command"] = "python benchmarks/fleet_migration.py " + " ".join(argv or sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fleet_migration.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "fleet_migration.png")
    print(json.dumps({k: v for k, v in result.items() if k in ("migration", "recovery")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
