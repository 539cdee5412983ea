"""SessionRecord, SessionContext, TTL expiry and ControlPlaneConfig validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_plane import (
    ControlPlaneConfig, SessionContext, SessionId, SessionRecord, SessionState, expired_sessions,
)
from kvpool.press_spec import PressSpec

from cp_factories import record


def test_new_record_is_loading_and_rebuildable_from_its_fields():
    press = PressSpec(name="snapkv", compression_ratio=0.25)
    context = SessionContext(token_ids=[5, 6, 7])
    rec = SessionRecord.new(SessionId("s"), model="qwen", context=context, press=press, now_s=10.0, owner="key1",
                            ttl_s=60)
    assert (rec.state, rec.version, rec.owner, rec.created_s, rec.last_used_s) == (SessionState.LOADING, 0, "key1", 10.0, 10.0)
    assert rec.press_spec == press
    assert rec.context.token_ids == (5, 6, 7)
    assert rec.context_hash == context.digest("qwen")
    assert SessionRecord.model_validate_json(rec.model_dump_json()) == rec


def test_context_hash_depends_on_model_and_content():
    a = SessionContext(text="hello")
    assert a.digest("m1") == SessionContext(text="hello").digest("m1")
    assert a.digest("m1") != a.digest("m2")
    assert a.digest("m1") != SessionContext(text="hello!").digest("m1")


@pytest.mark.parametrize("fields", [{}, {"text": "a", "token_ids": [1]}, {"text": "a", "messages": []}])
def test_context_needs_exactly_one_form(fields):
    with pytest.raises(ValidationError, match="exactly one"):
        SessionContext(**fields)


def test_messages_context_round_trips():
    context = SessionContext(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert SessionContext.model_validate_json(context.model_dump_json()) == context


def test_record_is_closed_and_checks_units():
    with pytest.raises(ValidationError, match="extra"):
        record().updated(bytes=5)
    with pytest.raises(ValidationError):
        record().updated(stored_bytes=-1)
    with pytest.raises(ValidationError):
        record().updated(ttl_s=0)


def test_updated_keeps_state_and_bumps_version():
    rec = record()
    touched = rec.updated(last_used_s=42.0)
    assert (touched.state, touched.version, touched.last_used_s) == (rec.state, rec.version + 1, 42.0)


def test_ttl_counts_from_last_use_and_skips_pinned_and_untimed():
    idle = record("idle", ttl_s=10, last_used_s=0)
    fresh = record("fresh", ttl_s=10, last_used_s=5)
    pinned = record("pinned", ttl_s=1, pinned=True)
    forever = record("forever", ttl_s=None)
    deleted = record("deleted", ttl_s=1, state=SessionState.DELETED)
    everything = [fresh, idle, pinned, forever, deleted]
    assert expired_sessions(everything, 9.99) == []
    assert [r.id for r in expired_sessions(everything, 10.0)] == ["idle"]
    assert [r.id for r in expired_sessions(everything, 15.0)] == ["idle", "fresh"]  # oldest expiry first
    assert idle.expires_at_s() == 10.0 and pinned.expires_at_s() is None


def test_config_rejects_typos_and_unknown_names():
    with pytest.raises(ValidationError, match="extra"):
        ControlPlaneConfig(placement_polcy="least_bytes")
    with pytest.raises(ValidationError, match="least_bytes, power_of_two"):
        ControlPlaneConfig(placement_policy="round_robin")
    with pytest.raises(ValidationError, match="largest, lru"):
        ControlPlaneConfig(victim_order="random")
    with pytest.raises(ValidationError, match="pressure_target"):
        ControlPlaneConfig(pressure_threshold=0.5, pressure_target=0.8)
    with pytest.raises(ValidationError, match="affinity_fallback"):
        ControlPlaneConfig(affinity_fallback="affinity")
    with pytest.raises(ValidationError):
        ControlPlaneConfig(store="postgres")


def test_config_round_trips_through_json():
    config = ControlPlaneConfig(placement_policy="affinity", store_path="/tmp/x.sqlite3", migration_retries=5)
    assert ControlPlaneConfig.model_validate_json(config.model_dump_json()) == config
