"""Session state machine: every allowed transition works, every other one raises InvalidTransition."""

from __future__ import annotations

import itertools

import pytest

from control_plane import ALLOWED_TRANSITIONS, InvalidTransition, SessionState
from kvpool.errors import KVFleetError
from control_plane.states import can_transition, check_transition

from cp_factories import record

S = SessionState
EXPECTED = {
    (S.LOADING, S.READY), (S.LOADING, S.REBUILDING), (S.LOADING, S.FAILED), (S.LOADING, S.DELETED),
    (S.READY, S.SPILLED), (S.READY, S.MIGRATING), (S.READY, S.REBUILDING), (S.READY, S.DELETED),
    (S.SPILLED, S.READY), (S.SPILLED, S.MIGRATING), (S.SPILLED, S.REBUILDING), (S.SPILLED, S.DELETED),
    (S.MIGRATING, S.READY), (S.MIGRATING, S.SPILLED), (S.MIGRATING, S.REBUILDING), (S.MIGRATING, S.DELETED),
    (S.REBUILDING, S.READY), (S.REBUILDING, S.FAILED), (S.REBUILDING, S.DELETED),
    (S.FAILED, S.REBUILDING), (S.FAILED, S.DELETED),
}
ALL_PAIRS = list(itertools.product(SessionState, repeat=2))


def test_table_is_exactly_the_documented_lifecycle():
    table = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == EXPECTED
    assert set(ALLOWED_TRANSITIONS) == set(SessionState)


@pytest.mark.parametrize(("current", "new"), sorted(EXPECTED))
def test_allowed_transition_bumps_version_and_sets_state(current, new):
    rec = record(state=current)
    moved = rec.transition(new)
    assert moved.state is new
    assert moved.version == rec.version + 1
    assert rec.state is current  # records are immutable


@pytest.mark.parametrize(("current", "new"), [p for p in ALL_PAIRS if p not in EXPECTED])
def test_invalid_transition_raises_with_the_allowed_choices(current, new):
    rec = record(state=current)
    assert not can_transition(current, new)
    with pytest.raises(InvalidTransition) as info:
        rec.transition(new)
    message = str(info.value)
    assert current.value in message and new.value in message
    for allowed in ALLOWED_TRANSITIONS[current]:
        assert allowed.value in message
    assert isinstance(info.value, KVFleetError)


def test_deleted_is_terminal():
    with pytest.raises(InvalidTransition, match="terminal"):
        check_transition("s", S.DELETED, S.READY)


def test_updated_refuses_a_state_change():
    with pytest.raises(ValueError, match="transition"):
        record(state=S.READY).updated(state=S.DELETED)
