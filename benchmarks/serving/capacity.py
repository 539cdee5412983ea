"""Memory and capacity: bytes per session per press x ratio, and sessions held in a fixed budget.

Bytes come from the serving replicas themselves: ``bytes_stored`` of every session the quality
sweep loads (the pool's exact accounting, ``CompressedKV.nbytes``), and the int8 size after the
admin quantize. Sessions held: when this process started the app, one real cache per press x
ratio is exported from its replica's DecodeActor (``export``) and a real ``KVPool`` with a
``budget_bytes`` host budget is filled with it until the first eviction (codec none and int8);
otherwise (``--url``) it is ``floor(budget / bytes)``, which is what the pool's byte budget holds
(``method`` says which).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from statistics import fmean
from typing import Any

from benchmarks.serving.app import Target

# A fill materializes ``budget_bytes`` of real cache in this process (twice: codec none, then
# int8): one fill at a time, or concurrent quality workers multiply the peak.
_FILL_LOCK = threading.Lock()


def pool_sessions_held(ckv: Any, budget_bytes: int, codec: str) -> int:
    """Put ``ckv`` under new session ids into a host-only KVPool until its first eviction."""
    from kvpool import EventKind, KVPool, KVPoolConfig, SessionId

    evicted: list[Any] = []
    with KVPool(KVPoolConfig(host_budget_bytes=budget_bytes, default_codec=codec)) as pool:
        pool.subscribe(lambda event: evicted.append(event) if event.kind is EventKind.EVICTED else None)
        for i in range(1_000_000):
            pool.put(ckv, SessionId(f"cap-{i}"))
            if evicted:
                return i  # the i-th put evicted one: i sessions fit
    raise RuntimeError("pool never evicted: budget too large for this benchmark")


def export_cache(target: Target, session: dict) -> Any:
    """The session's stored CompressedKV, exported from its replica (needs the app started here)."""
    from kvpool import unpack

    return unpack(export_packed(target, session))


def export_packed(target: Target, session: dict) -> Any:
    """The session's PackedKV, read from its replica's DecodeActor (``Replica.decode_endpoint``)."""
    import ray

    decode_actor = target.replica_handle(session["replica"]).decode_endpoint.remote().result(timeout_s=60)
    return ray.get(decode_actor.export.remote(session["id"]), timeout=300)


def measure_session(target: Target, session: dict, budget_bytes: int) -> dict[str, Any]:
    """Real pool fills with this session's cache (codec none and int8)."""
    from kvpool import codecs

    with _FILL_LOCK:
        ckv = export_cache(target, session)
        if ckv.meta.codec != "none":
            ckv = codecs.decode(ckv)
        return {"exported_bytes": ckv.nbytes, "sessions_held": pool_sessions_held(ckv, budget_bytes, "none"),
                "sessions_held_int8": pool_sessions_held(ckv, budget_bytes, "int8")}


def summarize(jobs: list[dict[str, Any]], budget_bytes: int) -> list[dict[str, Any]]:
    """One row per press x ratio: mean bytes over documents, sessions held (pool fill or floor), gains."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for job in jobs:
        groups[(job["press"], job["compression_ratio"])].append(job)
    rows = []
    for (label, ratio), members in sorted(groups.items(), key=lambda kv: (kv[0][0] != "none", kv[0])):
        row: dict[str, Any] = {"press": label, "compression_ratio": ratio, "documents": len(members),
                               "context_tokens": fmean(j["tokens_read"] for j in members),
                               "tokens_kept": fmean(j["tokens_kept"] for j in members),
                               "bytes_per_session": fmean(j["bytes_stored"] for j in members)}
        int8 = [j["bytes_stored_int8"] for j in members if "bytes_stored_int8" in j]
        row["bytes_per_session_int8"] = fmean(int8) if int8 else None
        filled = [j["capacity"] for j in members if j.get("capacity")]
        if filled:
            row["method"] = "kvpool_fill"
            row["sessions_held"] = filled[0]["sessions_held"]
            row["sessions_held_int8"] = filled[0]["sessions_held_int8"]
            row["pool_fill_bytes_per_session"] = filled[0]["exported_bytes"]
        else:
            row["method"] = "floor(budget/bytes)"
            row["sessions_held"] = math.floor(budget_bytes / row["bytes_per_session"])
            row["sessions_held_int8"] = math.floor(budget_bytes / row["bytes_per_session_int8"]) if int8 else None
        rows.append(row)
    base = next((r for r in rows if r["press"] == "none"), None)
    for row in rows:
        r = row["compression_ratio"]
        row["goal_gain"] = 1 / (1 - r)
        if base is None:
            continue
        row["bytes_fraction_of_uncompressed"] = row["bytes_per_session"] / base["bytes_per_session"]
        row["gain_vs_uncompressed"] = row["sessions_held"] / base["sessions_held"]
        # sessions are whole: the goal in sessions is floor(base / (1 - r)) (1e-9: float noise)
        row["meets_goal"] = row["sessions_held"] >= math.floor(base["sessions_held"] / (1 - r) + 1e-9)
        if row["sessions_held_int8"] is not None:
            row["gain_int8_vs_uncompressed"] = row["sessions_held_int8"] / base["sessions_held"]
    return rows
