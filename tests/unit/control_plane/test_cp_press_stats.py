"""A load's press statistics (``get_stats()`` of e.g. moe_router) live in the session record:
``GET /v1/sessions/{id}`` serves them (session_view), and they survive a control-plane restart
from its SQLite store. No Ray."""

from __future__ import annotations

from control_plane import ControlPlane, ControlPlaneConfig, ReplicaId, SessionContext
from deployments.ingress.sessions.replies import session_view
from kvpool.press_spec import PressSpec

from cp_factories import MiB, PoolEvent, stats

STATS = {"press": "moe_router", "router_type": "pikv", "compression_ratio_requested": 0.5,
         "compression_ratio_applied": 0.5, "expert_share": {"knorm": 0.25, "keydiff": 0.75},
         "layer_stats": [{"layer": 0, "experts": [["keydiff"]], "weights": [[1.0]], "tokens_kept": [5]}]}


def _loaded(cp: ControlPlane, press_stats: dict | None):
    cp.heartbeat(ReplicaId("r1"), stats(node="n1"))
    record, decision = cp.open_session(model="m", context=SessionContext(text=f"doc {press_stats is None}"),
                                       press=PressSpec(name="moe_router", compression_ratio=0.5))
    cp.apply_pool_event(decision.replica_id, PoolEvent("stored", f"h-{record.id}", record.id, "device", MiB))
    return cp.mark_loaded(record.id, read_tokens=10, kept_tokens=5, stored_bytes=MiB, press_stats=press_stats)


def test_the_session_view_serves_the_load_s_press_stats_after_a_restart(tmp_path):
    config = ControlPlaneConfig(store_path=tmp_path / "cp.sqlite3", placement_policy="least_bytes")
    cp = ControlPlane(config)
    with_stats, without = _loaded(cp, STATS), _loaded(cp, None)
    assert session_view(with_stats.model_dump(mode="json"))["press_stats"] == STATS
    assert session_view(without.model_dump(mode="json"))["press_stats"] is None

    restarted = ControlPlane(config)  # the records are read back from the store
    assert session_view(restarted.view.session(with_stats.id).model_dump(mode="json"))["press_stats"] == STATS
