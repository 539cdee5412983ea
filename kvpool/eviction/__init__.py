"""Eviction policies: ``base.EvictionPolicy`` (interface), one file per policy, ``registry`` by name."""

from kvpool.eviction.base import EvictionPolicy
from kvpool.eviction.fifo import FIFOPolicy
from kvpool.eviction.lfu import LFUPolicy
from kvpool.eviction.lru import LRUPolicy
from kvpool.eviction.registry import make_policy, policy_names, register_policy

__all__ = ["EvictionPolicy", "FIFOPolicy", "LFUPolicy", "LRUPolicy", "make_policy", "policy_names",
           "register_policy"]
