"""Prometheus metrics of transfers, recorded in the orchestrating process (the control plane)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from transfer.states import TransferState
from transfer.ticket import TicketStatus

TRANSFERS = Counter("kvfleet_transfers_total", "Transfers by backend and final state", ["backend", "state"])
FAILURES = Counter("kvfleet_transfer_failures_total", "Failed transfers by backend and reason",
                   ["backend", "reason"])
BYTES = Counter("kvfleet_transfer_bytes_total", "Verified bytes moved", ["backend"])
SECONDS = Histogram("kvfleet_transfer_seconds", "Duration of successful transfers", ["backend"],
                    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
THROUGHPUT = Histogram("kvfleet_transfer_bytes_per_second", "Throughput of successful transfers", ["backend"],
                       buckets=(1e6, 1e7, 1e8, 2.5e8, 5e8, 1e9, 2e9, 4e9, 8e9, 1.6e10))
CLEANUP_FAILURES = Counter("kvfleet_transfer_cleanup_failures_total",
                           "Cleanup calls after a transfer that failed or timed out", ["backend", "side"])


def observe(status: TicketStatus) -> None:
    """Record one finished ticket."""
    TRANSFERS.labels(status.backend, status.state.value).inc()
    if status.state == TransferState.DONE:
        BYTES.labels(status.backend).inc(status.bytes_moved)
        SECONDS.labels(status.backend).observe(status.elapsed_s)
        THROUGHPUT.labels(status.backend).observe(status.throughput_bytes_per_s)
    elif status.reason is not None:
        FAILURES.labels(status.backend, status.reason.value).inc()


def cleanup_failed(backend: str, side: str) -> None:
    CLEANUP_FAILURES.labels(backend, side).inc()
