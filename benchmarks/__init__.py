"""Reproducible benchmarks. Each writes JSON (with provenance: machine, versions, config, commit)
and PNG plots to ``benchmarks/results/``.

- ``engine_ttft``: engine-level TTFT (stored cache vs re-prefill), bytes per press x ratio, model load.
- ``serving_report``: ``kvfleet bench run|report`` - quality, latency, capacity and migration of a
  running kvfleet (``benchmarks.serving``).
- ``kvpool_capacity``, ``control_plane_decisions``: package-level benchmarks.

May import every kvfleet package; nothing imports ``benchmarks``.
"""
