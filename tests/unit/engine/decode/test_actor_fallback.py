"""A model the packed decode cannot serve decodes one request per forward, and stats say why."""

from __future__ import annotations

from deployments.serving.decode_actor import DecodeActor


def test_eager_attention_turns_batching_off_with_the_reason_in_stats(caplog):
    actor = DecodeActor.__ray_actor_class__({"attn_implementation": "eager"}, 1, {})  # the class, without Ray
    assert actor.decode_loop is None
    batch = actor.stats()["batch"]
    assert batch["enabled"] is False and "sdpa only" in batch["reason"]
    assert "continuous batching is off" in caplog.text


def test_batching_disabled_by_config_says_so():
    actor = DecodeActor.__ray_actor_class__({}, 1, {}, batching={"enabled": False})
    assert actor.stats()["batch"] == {"enabled": False, "reason": "batching.enabled is false"}
