"""What a session's press actually did, for the session view (``GET /v1/sessions/{id}``).

A spec may leave a context uncompressed on purpose: the context is shorter than its
``min_tokens`` threshold, or a ``target_tokens`` budget already holds it. The view says so
instead of leaving the user to compare ``tokens_read`` and ``tokens_kept``.
"""

from __future__ import annotations

from typing import Any


def press_outcome(press: dict[str, Any], read_tokens: int, kept_tokens: int) -> dict[str, Any] | None:
    """``{"applied", "kept_fraction", "note"}`` for a loaded session; None before it is loaded.

    ``kept_fraction`` is kept / read tokens per head (1.0 = nothing pruned).
    """
    if read_tokens <= 0:
        return None
    name = press.get("name", "none")
    min_tokens = int(press.get("min_tokens") or 0)
    budget = press.get("target_tokens")
    kept_fraction = round(kept_tokens / read_tokens, 4)
    if name == "none":
        return {"applied": False, "kept_fraction": kept_fraction, "note": "press 'none': stored uncompressed"}
    if read_tokens < min_tokens:
        note = (f"context of {read_tokens} tokens is below the press's min_tokens ({min_tokens}): "
                "stored uncompressed")
        return {"applied": False, "kept_fraction": kept_fraction, "note": note}
    if budget is not None and read_tokens <= budget:
        note = f"context of {read_tokens} tokens fits the target_tokens budget ({budget}): stored uncompressed"
        return {"applied": False, "kept_fraction": kept_fraction, "note": note}
    return {"applied": True, "kept_fraction": kept_fraction, "note": f"compressed with {name!r}"}
