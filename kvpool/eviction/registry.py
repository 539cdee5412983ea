"""Eviction policies by name. Adding one = a new file + one ``register_policy`` call."""

from __future__ import annotations

from kvpool.errors import UnknownNameError
from kvpool.eviction.base import EvictionPolicy
from kvpool.eviction.fifo import FIFOPolicy
from kvpool.eviction.lfu import LFUPolicy
from kvpool.eviction.lru import LRUPolicy

_POLICIES: dict[str, type[EvictionPolicy]] = {}


def register_policy(cls: type[EvictionPolicy]) -> type[EvictionPolicy]:
    """Make ``cls`` available under ``cls.name`` (usable as a decorator). Re-registering a name replaces it."""
    _POLICIES[cls.name] = cls
    return cls


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def make_policy(name: str) -> EvictionPolicy:
    """A fresh policy instance. Raises UnknownNameError listing the valid names."""
    try:
        cls = _POLICIES[name.strip().lower()]
    except KeyError:
        raise UnknownNameError("eviction policy", name, policy_names()) from None
    return cls()


for _cls in (LRUPolicy, LFUPolicy, FIFOPolicy):
    register_policy(_cls)
