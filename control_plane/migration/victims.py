"""Victim orders: which sessions leave an over-full replica first. Registry by name."""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from control_plane.errors import UnknownPolicy
from control_plane.session import SessionRecord

VictimOrder = Callable[[Sequence[SessionRecord]], list[SessionRecord]]


def least_recently_used(records: Sequence[SessionRecord]) -> list[SessionRecord]:
    """Idle longest first: the sessions least likely to be asked soon move with the least harm."""
    return sorted(records, key=lambda r: (r.last_used_s, r.id))


def largest_first(records: Sequence[SessionRecord]) -> list[SessionRecord]:
    """Biggest caches first: the fewest transfers to get back under the threshold."""
    return sorted(records, key=lambda r: (-r.stored_bytes, r.last_used_s, r.id))


VICTIM_ORDERS: Mapping[str, VictimOrder] = MappingProxyType({
    "lru": least_recently_used,
    "largest": largest_first,
})


def victim_order(name: str) -> VictimOrder:
    """The order registered as ``name``; UnknownPolicy lists the valid names."""
    try:
        return VICTIM_ORDERS[name]
    except KeyError:
        raise UnknownPolicy("victim order", name, list(VICTIM_ORDERS)) from None
