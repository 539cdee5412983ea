"""Server-sent events framing shared by every streaming route (chat chunks, session load progress).

One event is ``data: <one-line JSON>\n\n``; an OpenAI stream ends with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

SSE_DONE = "data: [DONE]\n\n"


def sse(data: Any) -> str:
    """One ``data:`` event carrying ``data`` as compact JSON."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"
