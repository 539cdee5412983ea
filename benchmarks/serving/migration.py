"""Migration: time to move a session per transfer backend, vs rebuilding it by re-prefill.

Two levels, both on the caches of real sessions (contexts of each length in ``lengths``, stored
with ``press``):

1. ``backends``: the session's packed cache (exported from its replica's DecodeActor) is moved
   between two transfer endpoint actors (``transfer.testing.EndpointActor``, import hook = count
   bytes, so this is the transfer itself: describe, prepare, send, checksum verify, commit) with
   every backend that can run here (``transfer.registry.availability``). Needs the app started by
   this process (Ray access). Hook: ``transfer_backends_hook()`` says whether the transfer API is
   importable; if not, the section is skipped with the reason.
2. The real control-plane path, ``POST /admin/move`` to the other replica, timed from the POST
   until its admin event is done: ``admin_transfer`` (``method: transfer``, the app's configured
   backend) and ``reprefill`` (``method: rebuild``: the target re-prefills the stored context).
   Without the admin route, ``reprefill`` is a fresh ``POST /v1/sessions`` of the same context.

Rounds are interleaved (order rotating) so the shared machine's noise hits every variant alike.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from benchmarks.quality_tasks import needle_document
from benchmarks.serving.admin import has_route, run_action
from benchmarks.serving.app import Target
from benchmarks.serving.capacity import export_packed
from benchmarks.timing import summarize


def transfer_backends_hook() -> tuple[list[str], str]:
    """(backends usable here, note). Empty list + reason when the transfer API cannot be used."""
    try:
        from transfer.registry import availability_report
        from transfer.testing import EndpointActor  # noqa: F401
    except ImportError as exc:
        return [], f"transfer API unavailable ({exc}); backend timings skipped"
    report = availability_report()
    usable = [name for name, why in report.items() if why is None and name != "fake"]
    skipped = {name: why for name, why in report.items() if why is not None}
    return usable, f"usable: {usable}; unavailable here: {skipped or 'none'}"


def _other_replica(target: Target, replica: str) -> str | None:
    health = target.client.http.get("/admin/health", timeout=30)
    if health.status_code >= 400:
        return None
    names = [r["replica_id"] for r in health.json().get("replicas", []) if r.get("alive", True)]
    return next((n for n in names if n != replica), None)


def _backend_samples(target: Target, sessions: dict[int, dict], backends: list[str], rounds: int,
                     log: Callable[[str], None]) -> dict[int, dict[str, list[float]]]:
    import ray

    from transfer import make_backend
    from transfer.testing import EndpointActor

    source, sink = EndpointActor.remote(), EndpointActor.remote(sink=True)
    samples: dict[int, dict[str, list[float]]] = {n: {b: [] for b in backends} for n in sessions}
    try:
        for length, session in sessions.items():
            packed = export_packed(target, session)
            ray.get(source.offer.remote(f"ctx-{length}", packed), timeout=300)
            for round_index in range(rounds):
                shift = round_index % len(backends)
                for name in backends[shift:] + backends[:shift]:
                    status = make_backend(name).start(source, sink, f"ctx-{length}", timeout_s=300).result(330)
                    samples[length][name].append(status.elapsed_s)
                    log(f"migration {length} tok {name}: {status.elapsed_s:.3f} s "
                        f"({status.bytes_moved / 2**20:.1f} MiB, via {status.backend})")
    finally:
        for actor in (source, sink):
            ray.kill(actor)
    return samples


def run(target: Target, lengths: list[int], rounds: int, press: dict, count: Callable[[str], int],
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Backend transfers, admin move (transfer / rebuild) and re-prefill per context length."""
    start = time.perf_counter()
    docs = {n: needle_document(seed=5000 + n, target_tokens=n, count=count) for n in lengths}
    sessions = {n: target.client.create_session(doc.context, press) for n, doc in docs.items()}
    result: dict[str, Any] = {"press": press, "rows": []}
    try:
        backends, note = transfer_backends_hook() if target.owns_cluster else ([], "no Ray access (--url)")
        result["backends_note"] = note
        log(f"migration backends: {note}")
        backend_samples = _backend_samples(target, sessions, backends, rounds, log) if backends else {}
        admin = has_route(target.client, "/admin/move")
        result["admin_move_note"] = ("POST /admin/move (transfer; rebuild = reprefill)" if admin else
                                     "POST /admin/move is not routed by this app; reprefill = new session")
        result["reprefill_path"] = "admin_move_rebuild" if admin else "new_session"
        admin_samples: dict[int, dict[str, list[float]]] = {n: {"admin_transfer": [], "reprefill": []}
                                                            for n in lengths}
        for round_index in range(rounds):
            for n in lengths:
                variants = ["admin_transfer", "reprefill"] if admin else ["reprefill"]
                shift = round_index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    admin_samples[n][variant].append(_variant(target, variant, sessions, n, docs[n].context, press,
                                                                 admin))
                    log(f"migration {n} tok {variant}: {admin_samples[n][variant][-1]:.3f} s")
        for n in lengths:
            session = sessions[n]
            row = {"target_tokens": n, "context_tokens": session["tokens_read"], "tokens_kept": session["tokens_kept"],
                   "bytes": session["bytes_stored"]}
            for name, values in {**backend_samples.get(n, {}), **admin_samples[n]}.items():
                row[name] = summarize(values)
            reprefill = row["reprefill"]["median_s"]
            row["reprefill_over_backend_x"] = {
                name: reprefill / row[name]["median_s"] for name in (*backends, "admin_transfer")
                if name in row and row[name]["median_s"]}
            result["rows"].append(row)
    finally:
        for session in sessions.values():
            target.client.delete_session(session["id"])
    result["backends"] = backends
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _variant(target: Target, variant: str, sessions: dict[int, dict], n: int, context: str, press: dict,
             admin: bool) -> float:
    """Seconds of one migration variant for the session of length ``n`` (updates its replica)."""
    session = sessions[n]
    if variant == "reprefill" and not admin:
        again = target.client.create_session(context, press)
        target.client.delete_session(again["id"])
        return again["client_load_s"]
    other = _other_replica(target, session["replica"])
    if other is None:
        raise RuntimeError("admin move needs a second live replica")
    method = "transfer" if variant == "admin_transfer" else "rebuild"
    event = run_action(target.client, "/admin/move",
                       {"session_id": session["id"], "target_replica": other, "method": method})
    session["replica"] = target.client.get_session(session["id"])["replica"]
    return event["client_wall_s"]
