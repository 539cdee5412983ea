"""Identity of this process among transfer endpoints (a leaf module: imports nothing of kvfleet)."""

from __future__ import annotations

import uuid

PROCESS_TOKEN = uuid.uuid4().hex
"""Identifies this process: two endpoints with the same token share memory."""
