"""The scope a plain request's cached prefixes live in: who may reuse whose compressed prefixes.

A stored prefix is found only by requests with the same scope (kvpool.prefix_index folds it into
the content address). By default the scope is the caller's **owner** (the identity its API key
maps to), so a tenant can neither reuse another tenant's prefix nor learn from
``usage.prompt_tokens_details.cached_tokens`` or from timing that someone sent it. A request's
``cache_salt`` (vLLM's field) splits the owner's scope further: only requests with the same salt
share. Sharing on purpose: keys mapped to one owner share, and
``plain.share_prefixes_across_owners: true`` makes the scope the salt alone (one namespace for every
caller that sends the same salt, or none).
"""

from __future__ import annotations

import hashlib


def prefix_scope(owner: str, cache_salt: str | None = None, share_across_owners: bool = False) -> str:
    """An opaque scope string (hex digest; ``""`` = the shared namespace, no owner, no salt)."""
    parts = [] if share_across_owners else [f"owner:{owner}"]
    if cache_salt:
        parts.append(f"salt:{cache_salt}")
    if not parts:
        return ""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
