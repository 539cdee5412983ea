"""The LiteLLM router's parts that need no server: where a request names its session and how it is
rewritten, the session directories (one contract, every store), config and deployment parsing."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: litellm's bundled cost map, no fetch

import pytest

from deployments.litellm_router.balancer import RoundRobin, fewest_sessions
from deployments.litellm_router.config import (
    DirectoryConfig,
    KvfleetRouterConfig,
    kvfleet_router_config,
    read_litellm_config,
)
from deployments.litellm_router.directory import STORES, SessionRoute, make_directory
from deployments.litellm_router.endpoint import KvfleetEndpoint
from deployments.litellm_router.errors import RouterConfigError
from deployments.litellm_router.session_id import find_session_id, set_session_id


@pytest.mark.parametrize("request_kwargs", [
    {"session_id": "s1"},
    {"extra_body": {"session_id": "s1"}},
    {"metadata": {"session_id": "s1"}},
    {"litellm_metadata": {"session_id": "s1"}},
    {"proxy_server_request": {"headers": {"X-Session-Id": "s1"}}},
])
def test_session_id_is_found_wherever_the_client_put_it(request_kwargs):
    assert find_session_id(request_kwargs) == "s1"


def test_no_session_id():
    assert find_session_id({"messages": [], "metadata": {"model_group": "kvfleet"}}) is None


def test_rewrite_keeps_the_callers_extra_body_and_sends_one_field():
    extra_body = {"session_id": "s1", "other": 1}
    request = {"extra_body": extra_body, "session_id": "s1"}
    set_session_id(request, "sess_b_7")
    assert request["extra_body"] == {"session_id": "sess_b_7", "other": 1} and "session_id" not in request
    assert extra_body["session_id"] == "s1"  # the caller's dict is untouched
    header_only = {"proxy_server_request": {"headers": {"x-session-id": "s1"}}}
    set_session_id(header_only, "sess_b_7")
    assert header_only["session_id"] == "sess_b_7"


@pytest.mark.parametrize("store", sorted(STORES))
def test_directory_contract(store, tmp_path):
    directory = make_directory(DirectoryConfig(store=store, path=str(tmp_path / "d.sqlite3")))
    route = SessionRoute(session_id="s1", model_group="kvfleet", home="a", copies={"a": "s1"},
                         context=[{"role": "user", "content": "hi"}], press={"name": "knorm"}, ttl_s=60)
    directory.put(route)
    directory.put(SessionRoute(session_id="s2", model_group="other", home="b", copies={"b": "s2"}))
    assert directory.get("s1") == route and directory.get("nope") is None
    moved = route.moved_to("b", "sess_b_1", rebuilt=True)
    directory.put(moved)
    assert directory.get("s1").home == "b" and directory.get("s1").copies == {"a": "s1", "b": "sess_b_1"}
    assert directory.get("s1").rebuilds == 1 and directory.get("s1").rebuildable
    assert [r.session_id for r in directory.routes("kvfleet")] == ["s1"]
    assert directory.homes("kvfleet") == {"b": 1}
    assert directory.delete("s1") and not directory.delete("s1") and directory.get("s1") is None


def test_sqlite_directory_survives_a_restart(tmp_path):
    config = DirectoryConfig(store="sqlite", path=str(tmp_path / "d.sqlite3"))
    make_directory(config).put(SessionRoute(session_id="s1", model_group="g", home="a", copies={"a": "s1"}))
    assert make_directory(config).get("s1").home == "a"


def test_unknown_store_and_config_typo_name_the_problem():
    with pytest.raises(RouterConfigError, match="valid stores"):
        make_directory(DirectoryConfig(store="redis"))
    with pytest.raises(ValueError, match="health_ttl"):
        KvfleetRouterConfig.model_validate({"health_ttl": 1})


def test_shipped_config_parses(tmp_path):
    from pathlib import Path

    data = read_litellm_config(Path(__file__).resolve().parents[3] / "configs" / "litellm.yaml")
    config = kvfleet_router_config(data)
    assert config.serves("kvfleet") and not config.serves("gpt-4o")
    endpoints = [KvfleetEndpoint.from_deployment(d) for d in data["model_list"]]
    assert len({e.deployment_id for e in endpoints}) == len(endpoints) >= 2
    assert all(e.served_model == "embedded:smollm2-135m-instruct" and e.root.endswith(("/a", "/b")) for e in endpoints)
    with pytest.raises(RouterConfigError, match="does not exist"):
        read_litellm_config(tmp_path / "missing.yaml")


def test_deployment_without_stable_id_is_refused(monkeypatch):
    deployment = {"model_name": "kvfleet", "litellm_params": {"model": "openai/m", "api_base": "http://h/v1"}}
    with pytest.raises(RouterConfigError, match="model_info.id"):
        KvfleetEndpoint.from_deployment(deployment)
    deployment["model_info"] = {"id": "a"}
    deployment["litellm_params"]["api_key"] = "os.environ/KVFLEET_TEST_KEY"
    with pytest.raises(RouterConfigError, match="KVFLEET_TEST_KEY"):
        KvfleetEndpoint.from_deployment(deployment)
    monkeypatch.setenv("KVFLEET_TEST_KEY", "k1")
    assert KvfleetEndpoint.from_deployment(deployment).api_key == "k1"


def test_balancing():
    rr = RoundRobin()
    deployments = [{"model_info": {"id": i}} for i in ("b", "a")]
    assert [rr.pick("g", deployments)["model_info"]["id"] for _ in range(4)] == ["a", "b", "a", "b"]
    assert fewest_sessions(deployments, {"a": 3, "b": 1}, rr, "g")["model_info"]["id"] == "b"
