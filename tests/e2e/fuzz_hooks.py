"""schemathesis hooks for tests/e2e/test_api_fuzz.py (loaded with ``SCHEMATHESIS_HOOKS``).

One rewrite, so a run cannot take its own app down half-way: the fuzzer learns real replica ids
from replies (``GET /admin/health``, a session's ``replica``) and would drain the app's only
replica, after which every new session is - correctly - a 503 ``no_replica``, and the rest of the
run would test nothing. A drain body naming a real replica (``replica-<n>``) is sent with the name
prefixed (``fuzz-replica-<n>``: a 404). Draining the only replica is tested in
tests/e2e/test_serving_secured.py.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

_REAL_REPLICA = re.compile(r"^replica-\d+$")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    body = case.body
    if case.operation.path == "/admin/drain" and isinstance(body, dict) \
            and isinstance(body.get("replica"), str) and _REAL_REPLICA.match(body["replica"].strip()):
        case.body = {**body, "replica": "fuzz-" + body["replica"]}
