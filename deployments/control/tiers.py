"""Replica pool tiers as the control plane names them, and a stored-cache reply as it records it.

The control plane's ``device`` tier is a replica's *primary* memory tier - GPU memory on GPU
replicas, host memory on CPU replicas - so pressure and placement work the same on both; a CPU
pool's ``host`` tier is reported as ``device`` and its ``disk`` tier as ``disk``.
"""

from __future__ import annotations

from control_plane.replica import Tier


def primary_tier_map(pool_tiers: list[str]) -> dict[str, Tier]:
    """Map a pool's tier names (fastest first) to control-plane tiers (see module docstring)."""
    names = [t for t in ("device", "host", "disk") if t in pool_tiers]
    mapping: dict[str, Tier] = {}
    for i, name in enumerate(names):
        mapping[name] = Tier.DISK if name == "disk" else (Tier.DEVICE if i == 0 else Tier.HOST)
    return mapping


def loaded_fields(stored: dict) -> dict:
    """``ControlPlane.mark_loaded`` keyword arguments from a replica's stored-cache reply
    (``DecodeActor.store``): sizes, codec, control-plane tier and the press's statistics."""
    return {"read_tokens": stored["read_tokens"], "kept_tokens": stored["kept_tokens"],
            "stored_bytes": stored["stored_bytes"], "codec": stored["codec"], "tier": stored_tier(stored["tier"]),
            "press_stats": stored.get("press_stats") or None}


def stored_tier(pool_tier: str) -> Tier:
    """The control-plane tier of a cache a replica reports stored in its pool tier ``pool_tier``
    (a pool has a ``device`` tier only on a GPU replica)."""
    tiers = ["host", "disk"] if pool_tier != "device" else ["device", "host", "disk"]
    return primary_tier_map(tiers)[pool_tier]
