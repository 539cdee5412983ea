"""LoopStats: counters of the decode loop (steps, tokens, batch sizes) and recent rates."""

from __future__ import annotations

import threading
import time
from collections import deque

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class LoopStats:
    """Written by the loop thread, read by the actor (under a small lock).

    ``batch_size_buckets``: cumulative counts of steps with at most ``le`` rows (Prometheus form).
    Rates (``steps_per_s``, ``tokens_per_s``) are over the last ``window_s`` seconds of steps."""

    def __init__(self, window_s: float = 10.0):
        self.window_s = window_s
        self._lock = threading.Lock()
        self.steps = 0
        self.tokens = 0
        self.joins = 0
        self.extend_forwards = 0
        self.step_seconds = 0.0
        self.batch_size_sum = 0
        self.queue_length = 0
        self.last_batch_size = 0
        self._buckets = [0] * len(BATCH_SIZE_BUCKETS)
        self._recent: deque[tuple[float, int]] = deque()

    def record(self, rows: int, joins: int, tokens: int, seconds: float, queue_length: int,
               extends: int = 0) -> None:
        """One step of ``rows`` rows, ``joins`` of them new (fed through ``extends`` extend forwards),
        ``tokens`` sampled without error."""
        now = time.monotonic()
        with self._lock:
            self.steps += 1
            self.tokens += tokens
            self.joins += joins
            self.extend_forwards += extends
            self.step_seconds += seconds
            self.batch_size_sum += rows
            self.queue_length = queue_length
            self.last_batch_size = rows
            for i, le in enumerate(BATCH_SIZE_BUCKETS):
                if rows <= le:
                    self._buckets[i] += 1
            self._recent.append((now, tokens))
            while self._recent and self._recent[0][0] < now - self.window_s:
                self._recent.popleft()

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self._lock:
            recent = [(t, n) for t, n in self._recent if t >= now - self.window_s]
            return {
                "steps": self.steps, "tokens": self.tokens, "joins": self.joins,
                "extend_forwards": self.extend_forwards,
                "step_seconds": round(self.step_seconds, 6), "batch_size_sum": self.batch_size_sum,
                "batch_size_buckets": {str(le): n for le, n in zip(BATCH_SIZE_BUCKETS, self._buckets)},
                "last_batch_size": self.last_batch_size, "queue_length": self.queue_length,
                "steps_per_s": round(len(recent) / self.window_s, 3),
                "tokens_per_s": round(sum(n for _, n in recent) / self.window_s, 3),
            }
