"""Block hashes of a plain prompt's prefix, computed on its text (no tokenizer in the router).

The prefix (deployments.common.plain_prompt: the document of a one-message prompt, or every message but
the last) is serialised canonically and cut into ``block_chars``-character blocks, chained::

    hash_0 = H(scope, model, press)         (not returned: it only seeds the chain)
    hash_i = H(hash_{i-1}, block i)         (the last block may be shorter)

Two prompts share their first k hashes exactly when their serialised prefixes share the first k
full blocks (in the same scope, model and press) - a character-level stand-in for the replicas'
token-level index, as Ray Serve's PrefixCacheAffinityRouter matches on text.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _serialise(prefix: str | list[dict[str, Any]]) -> str:
    if isinstance(prefix, str):
        return prefix
    return "".join(json.dumps(m, sort_keys=True, ensure_ascii=False) + "\n" for m in prefix)


def text_block_hashes(scope: str, model: str, press: dict[str, Any], prefix: str | list[dict[str, Any]],
                      block_chars: int = 256) -> tuple[bytes, ...]:
    """Chained 16-byte hashes of the prefix's blocks (see module docstring); () for an empty prefix."""
    if block_chars < 1:
        raise ValueError(f"block_chars must be >= 1, got {block_chars}")
    seed = json.dumps([scope, model, press], sort_keys=True).encode()
    previous = hashlib.blake2b(seed, digest_size=16).digest()
    text = _serialise(prefix)
    hashes = []
    for start in range(0, len(text), block_chars):
        previous = hashlib.blake2b(previous + text[start:start + block_chars].encode(), digest_size=16).digest()
        hashes.append(previous)
    return tuple(hashes)
