"""A real ``litellm.Router`` (KvfleetRouterClient over configs/litellm.yaml) in front of two real
kvfleet applications on one Ray cluster (route prefixes /lra and /lrb): session affinity over 20
questions on 4 sessions, balancing of plain requests, and failover when one app is deleted.

The module's tests run in order and share the two apps; the last one deletes the first app.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: litellm's bundled cost map, no fetch

import time
from typing import Iterator

import pytest

from deployments.litellm_router import KvfleetRouterClient, KvfleetRouterConfig
from tests.e2e.litellm_support import (
    E2E_PORT,
    GROUP,
    QUESTIONS,
    START_TIMEOUT_S,
    ask_direct,
    litellm_config,
    session_context,
    session_on,
    user,
)
from tests.serving import serve_app, small_args

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
APPS = {"kvfleet-a": "lra", "kvfleet-b": "lrb"}  # LiteLLM deployment id -> Serve application name
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def apps(ray_session: None) -> Iterator[dict[str, str]]:
    """{deployment id: base URL} of two 1-replica kvfleet apps (the router's two deployments)."""
    args = small_args(replicas={"count": 1})
    with serve_app(E2E_PORT, args, name="lra", route_prefix="/lra", timeout_s=START_TIMEOUT_S) as a, \
            serve_app(E2E_PORT, small_args(replicas={"count": 1}), name="lrb", route_prefix="/lrb",
                      timeout_s=START_TIMEOUT_S) as b:
        yield {"kvfleet-a": a, "kvfleet-b": b}


@pytest.fixture(scope="module")
def client(apps: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> KvfleetRouterClient:
    data = litellm_config({i: f"{url}/v1" for i, url in apps.items()},
                          tmp_path_factory.mktemp("litellm-router") / "sessions.sqlite3")
    config = KvfleetRouterConfig.model_validate(data["kvfleet_router"])
    return KvfleetRouterClient.from_model_list(data["model_list"], data["router_settings"], config)


@pytest.fixture(scope="module")
def sessions(client: KvfleetRouterClient) -> list[dict]:
    return [client.create_session(GROUP, session_context(i)) for i in range(4)]


@pytest.fixture(scope="module")
def answers() -> dict[tuple[str, str], str]:
    """(session id, question) -> the answer the router returned (filled by the affinity test)."""
    return {}


def _ask(client: KvfleetRouterClient, session_id: str | None, question: str, **kwargs) -> tuple[str, str]:
    """(answer text, deployment id that answered) through the real litellm.Router."""
    reply = client.completion(GROUP, user(question), session_id=session_id, temperature=0, max_tokens=MAX_TOKENS,
                              **kwargs)
    return reply.choices[0].message.content, reply._hidden_params["model_id"]


def test_sessions_are_spread_over_both_deployments(client, sessions, apps):
    homes = [s["router"]["home"] for s in sessions]
    assert sorted(homes) == ["kvfleet-a", "kvfleet-a", "kvfleet-b", "kvfleet-b"], homes
    for s in sessions:
        assert s["tokens_read"] > 0 and s["tokens_kept"] < s["tokens_read"], s  # loaded and compressed
        assert session_on(apps[s["router"]["home"]], s["id"]) is not None
        other = next(i for i in apps if i != s["router"]["home"])
        assert session_on(apps[other], s["id"]) is None  # the other deployment does not hold it


def test_affinity_over_20_questions_on_4_sessions(client, sessions, apps, answers):
    started = time.time()
    for question in QUESTIONS:
        for s in sessions:
            text, answered_by = _ask(client, s["id"], question)
            assert answered_by == s["router"]["home"], (s["id"], question)
            answers[(s["id"], question)] = text
    assert len(answers) >= 20
    for s in sessions:
        home = apps[s["router"]["home"]]
        assert session_on(home, s["id"])["last_used"] >= started  # the home answered its questions
        # the routed answer is the one the home app gives for this session when asked directly
        assert ask_direct(home, s["id"], QUESTIONS[0], MAX_TOKENS) == answers[(s["id"], QUESTIONS[0])]
    assert len({answers[(s["id"], QUESTIONS[0])] for s in sessions}) > 1  # sessions answer from their own context


def test_session_id_in_extra_body_and_metadata(client, sessions, answers):
    s = sessions[1]
    for kwargs in ({"extra_body": {"session_id": s["id"]}}, {"metadata": {"session_id": s["id"]}}):
        reply = client.run(client.router.acompletion(model=GROUP, messages=user(QUESTIONS[0]), temperature=0,
                                                      max_tokens=MAX_TOKENS, **kwargs))
        assert reply._hidden_params["model_id"] == s["router"]["home"], kwargs
        assert reply.choices[0].message.content == answers[(s["id"], QUESTIONS[0])], kwargs


def test_requests_without_session_are_balanced(client):
    answered_by = [_ask(client, None, "Say hello.")[1] for _ in range(4)]
    assert set(answered_by) == {"kvfleet-a", "kvfleet-b"}, answered_by


def test_unknown_session_is_a_clear_404(client):
    from deployments.litellm_router import UnknownSessionError

    with pytest.raises(Exception) as caught:
        _ask(client, "sess_does_not_exist", "Hello?")
    assert getattr(caught.value, "status_code", None) == 404 or isinstance(caught.value, UnknownSessionError)
    assert "POST /v1/sessions" in str(caught.value)


def test_failover_rebuilds_sessions_of_a_deleted_deployment(client, sessions, apps, answers):
    from ray import serve

    serve.delete(APPS["kvfleet-a"])
    moved = [s for s in sessions if s["router"]["home"] == "kvfleet-a"]
    for s in sessions:
        text, answered_by = _ask(client, s["id"], QUESTIONS[0])
        assert answered_by == "kvfleet-b", s["id"]
        # same context, same press, greedy: the rebuilt session answers as the original did
        assert text == answers[(s["id"], QUESTIONS[0])], s["id"]
    assert client.sessions.rebuilds == len(moved) == 2
    for s in moved:
        view = client.get_session(GROUP, s["id"])
        assert view["router"]["home"] == "kvfleet-b" and view["router"]["rebuilds"] == 1, view
        assert view["state"] == "ready" and view["id"] == s["id"], view
        copy_on_b = view["router"]["copies"]["kvfleet-b"]
        assert session_on(apps["kvfleet-b"], copy_on_b) is not None
    # later questions stay on the new home without another rebuild
    assert _ask(client, moved[0]["id"], QUESTIONS[1])[1] == "kvfleet-b"
    assert client.sessions.rebuilds == 2
    # plain requests keep working on the surviving deployment
    assert _ask(client, None, "Say hello.")[1] == "kvfleet-b"
