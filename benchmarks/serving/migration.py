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
from benchmarks.serving.retry import is_restart_symptom, wait_until_healthy, with_retries
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


def _backend_samples(target: Target, session: dict, key: str, backends: list[str], rounds: int,
                     log: Callable[[str], None]) -> dict[str, list[float]]:
    import ray

    from transfer import make_backend, start_transfer
    from transfer.testing import EndpointActor

    source, sink = EndpointActor.remote(), EndpointActor.remote(sink=True)
    samples: dict[str, list[float]] = {b: [] for b in backends}
    try:
        ray.get(source.offer.remote(key, export_packed(target, session)), timeout=300)
        for round_index in range(rounds):
            shift = round_index % len(backends)
            for name in backends[shift:] + backends[:shift]:
                status = start_transfer(make_backend(name), source, sink, key, timeout_s=300).result(330)
                samples[name].append(status.elapsed_s)
                log(f"migration {key} {name}: {status.elapsed_s:.3f} s "
                    f"({status.bytes_moved / 2**20:.1f} MiB, via {status.backend})")
    finally:
        for actor in (source, sink):
            ray.kill(actor)
    return samples


def measure_length(target: Target, n: int, rounds: int, press: dict, backends: list[str], admin: bool,
                   count: Callable[[str], int], log: Callable[[str], None]) -> dict[str, Any]:
    """One context length: a session, backend transfers of its cache, then admin move rounds."""
    doc = needle_document(seed=5000 + n, target_tokens=n, count=count)
    session = target.client.create_session(doc.context, press)
    try:
        row: dict[str, Any] = {"target_tokens": n, "context_tokens": session["tokens_read"],
                               "tokens_kept": session["tokens_kept"], "bytes": session["bytes_stored"]}
        samples = _backend_samples(target, session, f"ctx-{n}", backends, rounds, log) if backends else {}
        variants = ["admin_transfer", "reprefill"] if admin else ["reprefill"]
        samples.update({v: [] for v in variants})
        for round_index in range(rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                samples[variant].append(_variant(target, variant, session, doc.context, press, admin))
                log(f"migration {n} tok {variant}: {samples[variant][-1]:.3f} s")
        for name, values in samples.items():
            row[name] = summarize(values)
        reprefill = row["reprefill"]["median_s"]
        row["reprefill_over_backend_x"] = {name: reprefill / row[name]["median_s"]
                                           for name in (*backends, "admin_transfer")
                                           if name in row and row[name]["median_s"]}
        return row
    finally:
        target.client.delete_session(session["id"], missing_ok=True)


def run(target: Target, lengths: list[int], rounds: int, press: dict, count: Callable[[str], int],
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Backend transfers, admin move (transfer) and re-prefill per context length."""
    start = time.perf_counter()
    backends, note = transfer_backends_hook() if target.owns_cluster else ([], "no Ray access (--url)")
    log(f"migration backends: {note}")
    admin = has_route(target.client, "/admin/move")
    result: dict[str, Any] = {
        "press": press, "rows": [], "backends": backends, "backends_note": note, "retries": [], "failed": [],
        "admin_move_note": ("POST /admin/move (transfer; rebuild = reprefill)" if admin else
                            "POST /admin/move is not routed by this app; reprefill = new session"),
        "reprefill_path": "admin_move_rebuild" if admin else "new_session"}
    for n in lengths:
        try:
            result["rows"].append(with_retries(
                lambda: measure_length(target, n, rounds, press, backends, admin, count, log),
                target, f"migration {n} tok", result["retries"], attempts=2, log=log))
        except Exception as exc:  # noqa: BLE001 - recorded in the result and the report, then the next length
            if not is_restart_symptom(exc):
                raise
            result["failed"].append({"target_tokens": n, "error": str(exc)[:300]})
            log(f"migration {n} tok FAILED after retries: {exc}")
            wait_until_healthy(target)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _variant(target: Target, variant: str, session: dict, context: str, press: dict, admin: bool) -> float:
    """Seconds of one migration variant for ``session`` (updates its ``replica``)."""
    if variant == "reprefill" and not admin:
        again = target.client.create_session(context, press)
        target.client.delete_session(again["id"], missing_ok=True)
        return again["client_load_s"]
    other = _other_replica(target, session["replica"])
    if other is None:
        raise RuntimeError("admin move needs a second live replica")
    method = "transfer" if variant == "admin_transfer" else "rebuild"
    event = run_action(target.client, "/admin/move",
                       {"session_id": session["id"], "target_replica": other, "method": method})
    session["replica"] = _wait_ready(target, session["id"])["replica"]
    return event["client_wall_s"]


def _wait_ready(target: Target, session_id: str, timeout_s: float = 600.0) -> dict:
    """The session once it is ``ready`` again: a move's event can be done while the control plane
    still records the session as moving/rebuilding, and a session in that state cannot be moved."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = target.client.get_session(session_id)
        if info["state"] == "ready":
            return info
        if time.monotonic() >= deadline:
            raise TimeoutError(f"session {session_id} still {info['state']!r} {timeout_s} s after its move")
        time.sleep(0.2)
