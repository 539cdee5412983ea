"""GET /v1/sessions paging (control_plane.session_listing) and PATCH (ControlPlane.update_session), no Ray."""

from __future__ import annotations

import pytest

from control_plane import ControlPlane, ControlPlaneConfig, ReplicaId, SessionContext, SessionState, UnknownSession
from control_plane.session_listing import InvalidListing, page_sessions
from kvpool.press_spec import PressSpec

from cp_factories import MiB, PoolEvent, stats


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    cp = ControlPlane(ControlPlaneConfig(store_path=tmp_path / "cp.sqlite3", placement_policy="least_bytes",
                                         default_ttl_s=600.0), clock=clock)
    cp.heartbeat(ReplicaId("r1"), stats(node="n1"))

    def load(owner: str = "alice", model: str = "m"):
        clock.now_s += 1
        cp.heartbeat(ReplicaId("r1"), stats(node="n1"))
        record, decision = cp.open_session(model=model, context=SessionContext(text=f"doc {clock.now_s}"),
                                           owner=owner, press=PressSpec(name="knorm", compression_ratio=0.5))
        cp.apply_pool_event(decision.replica_id, PoolEvent("stored", f"h-{record.id}", record.id, "device", MiB))
        return cp.mark_loaded(record.id, read_tokens=10, kept_tokens=5, stored_bytes=MiB)

    return cp, clock, load


def ids(page) -> list[str]:
    return [r.id for r in page.records]


def test_pages_walk_every_session_once_newest_first(setup):
    cp, _, load = setup
    made = [load().id for _ in range(7)]
    records = cp.store.list(owner="alice")
    first = page_sessions(records, limit=3)
    assert ids(first) == made[::-1][:3] and first.has_more
    second = page_sessions(records, limit=3, after=ids(first)[-1])
    third = page_sessions(records, limit=3, after=ids(second)[-1])
    assert ids(first) + ids(second) + ids(third) == made[::-1]
    assert not third.has_more and second.has_more
    assert ids(page_sessions(records, limit=100, order="asc")) == made


def test_filters_and_a_deleted_cursor(setup):
    cp, _, load = setup
    a, b, c = load(model="m").id, load(model="other").id, load(model="m").id
    assert ids(page_sessions(cp.store.list(owner="alice"), model="m", order="asc")) == [a, c]
    cp.delete_session(b, owner="alice")
    records = cp.store.list(owner="alice")
    assert ids(page_sessions(records, order="asc")) == [a, c]            # tombstones are not listed ...
    assert ids(page_sessions(records, order="asc", after=b)) == [c]      # ... but still work as a cursor
    assert ids(page_sessions(records, state=SessionState.DELETED)) == [b]
    assert ids(page_sessions(records, state=SessionState.LOADING)) == []


def test_bad_listing_parameters(setup):
    cp, _, load = setup
    load()
    with pytest.raises(InvalidListing, match="limit"):
        page_sessions(cp.store.list(), limit=0)
    with pytest.raises(InvalidListing, match="after"):
        page_sessions(cp.store.list(owner="alice"), after="sess_unknown")
    bob = load(owner="bob").id
    with pytest.raises(InvalidListing):  # another owner's id is no cursor for alice
        page_sessions(cp.store.list(owner="alice"), after=bob)


def test_update_ttl_and_pin_is_durable_and_owner_scoped(setup, tmp_path):
    cp, clock, load = setup
    record = load()
    updated = cp.update_session(record.id, owner="alice", ttl_s=5.0)
    assert updated.ttl_s == 5.0 and updated.version > record.version
    assert cp.store.get(record.id).ttl_s == 5.0
    with pytest.raises(UnknownSession):
        cp.update_session(record.id, owner="bob", ttl_s=50.0)
    def later(seconds: float):
        clock.now_s += seconds
        cp.heartbeat(ReplicaId("r1"), stats(node="n1"))
        return cp.tick()

    cp.update_session(record.id, owner="alice", pinned=True)
    assert later(100).expired == []                    # pinned: no expiry
    cp.update_session(record.id, owner="alice", pinned=False, ttl_s=None)
    assert later(10_000).expired == []                 # ttl None: never expires
    cp.update_session(record.id, owner="alice", ttl_s=1.0)
    assert [r.id for r in later(2).expired] == [record.id]
    with pytest.raises(ValueError, match="only ttl_s and pinned"):
        cp.update_session(load().id, owner="alice", owner_name="x")
