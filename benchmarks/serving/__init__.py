"""The serving benchmark's parts (driven by ``benchmarks/serving_report.py``, ``kvfleet bench``).

- ``app``: the kvfleet under test (started here with tests/serving.py helpers, or ``--url``).
- ``client``: HTTP client with streamed TTFT; ``admin``: admin actions and their events.
- ``quality`` (accuracy per press x ratio, int8), ``capacity`` (bytes, sessions per budget),
  ``latency`` (TTFT, tokens/s, concurrency), ``migration`` (backends, admin move, re-prefill).
- ``targets`` (issue-9 goals), ``report`` (Markdown), ``plots`` (PNG).
"""
