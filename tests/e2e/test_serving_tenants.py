"""Tenant isolation on an app whose API keys come from a keys file of SHA-256 digests (no plain key
in its config): a prompt one tenant sent is not a cached prefix for another (``cached_tokens`` 0),
``cache_salt`` splits a tenant's prefix cache further, a tenant cannot see, use, change, move or
delete another's sessions through any route, and a key removed from the file stops working
without a restart; through a LiteLLM proxy holding another tenant's key, nothing of alice's is
visible either, and the sessions API (PATCH, list) passes through."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
import yaml

from tests.e2e.conftest import HTTP_TIMEOUT_S, assert_openai_error, create, user, wait_for
from tests.serving import MODEL, small_args

pytestmark = pytest.mark.e2e
ALICE, BOB = "tenant-key-alice", "tenant-key-bob"   # alice is also an admin
PROMPT = ("Internal memo. The quarterly target is 4,200 units. The launch moved to the second week of May. "
          "The supplier in Porto ships the housings; the supplier in Lyon ships the boards. "
          "Questions go to the operations desk. ") * 2


def write_keys(path: Path, keys: dict[str, tuple[str, bool]]) -> None:
    """Atomically replace the keys file: {plain key: (owner, admin)} stored as SHA-256 digests only."""
    entries = [{"owner": owner, "sha256": hashlib.sha256(key.encode()).hexdigest(), "admin": admin}
               for key, (owner, admin) in keys.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"keys": entries}))
    os.replace(tmp, path)


BASE_KEYS = {ALICE: ("alice", True), BOB: ("bob", False)}
RESPONSE_TTL_S = 6.0  # stored responses' idle TTL on this app (the expiry test waits it out)


@pytest.fixture(scope="module")
def keys_file() -> Path:
    path = Path(tempfile.mkdtemp(prefix="kvfleet-keys-")) / "keys.yaml"
    write_keys(path, BASE_KEYS)
    return path


@pytest.fixture(scope="module")
def tenants_url(extra_app, keys_file) -> Iterator[str]:
    args = small_args(replicas={"count": 1}, security={"keys_file": str(keys_file), "reload_s": 0.5},
                      responses={"ttl_s": RESPONSE_TTL_S})
    assert ALICE not in yaml.safe_dump(args) and BOB not in yaml.safe_dump(args)
    with extra_app("tenants", args) as url:
        yield url


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def oai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, timeout=HTTP_TIMEOUT_S, max_retries=0)


def plain(url: str, key: str, **extra_body) -> tuple[str, int]:
    """(answer, cached_tokens) of the plain prompt PROMPT, greedy."""
    reply = oai(url, key).chat.completions.create(model=MODEL, messages=user(PROMPT), temperature=0, max_tokens=8,
                                                  extra_body=extra_body or None)
    return reply.choices[0].message.content, reply.usage.prompt_tokens_details.cached_tokens


def test_a_prefix_is_reused_only_by_its_owner_and_salt(tenants_url):
    first, cached = plain(tenants_url, ALICE)
    assert cached == 0
    again, cached = plain(tenants_url, ALICE)
    assert cached > 0 and again == first                        # alice's own prefix is reused
    bobs, cached = plain(tenants_url, BOB)
    assert cached == 0 and bobs == first                          # same answer, nothing reused from alice
    assert plain(tenants_url, BOB)[1] > 0                       # bob now has his own entry
    assert plain(tenants_url, ALICE, cache_salt="project-x")[1] == 0
    assert plain(tenants_url, ALICE, cache_salt="project-x")[1] > 0
    assert plain(tenants_url, BOB, cache_salt="project-x")[1] == 0   # same salt, other owner: still apart
    response = httpx.post(f"{tenants_url}/v1/chat/completions", headers=auth(ALICE), timeout=60,
                          json={"model": MODEL, "messages": user("hi"), "cache_salt": ""})
    assert_openai_error(response, 400, "invalid_request")


@pytest.fixture(scope="module")
def alice_session(tenants_url) -> dict:
    return create(tenants_url, {"context": "Alice's locker code is 5521.", "press": {"name": "none"}},
                  headers=auth(ALICE))


def test_another_tenant_cannot_see_use_change_or_delete_a_session(tenants_url, alice_session):
    sid, url = alice_session["id"], tenants_url
    bob = httpx.Client(base_url=url, headers=auth(BOB), timeout=60)
    assert_openai_error(bob.get(f"/v1/sessions/{sid}"), 404, "session_not_found")
    assert_openai_error(bob.patch(f"/v1/sessions/{sid}", json={"ttl_s": 1}), 404, "session_not_found")
    assert_openai_error(bob.patch(f"/v1/sessions/{sid}", json={"pinned": True}), 404, "session_not_found")
    assert_openai_error(bob.delete(f"/v1/sessions/{sid}"), 404, "session_not_found")
    assert_openai_error(bob.post("/v1/chat/completions", json={"model": MODEL, "messages": user("Code?"),
                                                               "session_id": sid}), 404, "session_not_found")
    with pytest.raises(openai.NotFoundError):
        oai(url, BOB).chat.completions.create(model=MODEL, messages=user("Code?"), extra_headers={"X-Session-Id": sid})
    assert sid not in [s["id"] for s in bob.get("/v1/sessions", params={"limit": 1000}).json()["data"]]
    assert_openai_error(bob.get("/v1/sessions", params={"after": sid}), 400)   # not even as a cursor
    for method, path, body in [("GET", "/admin/health", None), ("GET", "/admin/stats", None),
                               ("GET", "/admin/stats/replica-0", None), ("POST", "/admin/lookup", {"session_id": sid}),
                               ("POST", "/admin/move", {"session_id": sid}), ("POST", "/admin/pin", {"session_id": sid}),
                               ("POST", "/admin/unpin", {"session_id": sid}), ("POST", "/admin/clear", {"all": True}),
                               ("POST", "/admin/compress", {"session_id": sid, "codec": "int8"}),
                               ("POST", "/admin/decompress", {"session_id": sid}),
                               ("POST", "/admin/drain", {"replica": "replica-0"}), ("GET", "/admin/events/evt_x", None)]:
        assert_openai_error(bob.request(method, path, json=body), 403, "admin_required")
    view = httpx.get(f"{url}/v1/sessions/{sid}", headers=auth(ALICE), timeout=60).json()
    assert view["state"] == "ready" and view["pinned"] is False and view["ttl_s"] == alice_session["ttl_s"]
    reply = oai(url, ALICE).chat.completions.create(model=MODEL, messages=user("What is Alice's locker code?"),
                                                    temperature=0, max_tokens=12, extra_body={"session_id": sid})
    assert "5521" in reply.choices[0].message.content


def test_another_tenant_cannot_see_continue_or_delete_a_response_and_an_expired_one_is_named(tenants_url):
    """A stored response (Responses API) is scoped to its owner like a session: bob gets the 404 of
    an unknown id from every route; alice's own expires after the app's ``responses.ttl_s`` and
    then a 404 names it and says it expired."""
    alice, bob = oai(tenants_url, ALICE), httpx.Client(base_url=tenants_url, headers=auth(BOB), timeout=60)
    reply = alice.responses.create(model=MODEL, input="Remember the word apple.", temperature=0, max_output_tokens=4)
    rid = reply.id
    for method, path in [("GET", f"/v1/responses/{rid}"), ("GET", f"/v1/responses/{rid}/input_items"),
                         ("DELETE", f"/v1/responses/{rid}")]:
        error = assert_openai_error(bob.request(method, path), 404)
        assert "for this API key" in error["message"], error  # the same answer as an unknown id
    body = {"model": MODEL, "input": "Which word?", "previous_response_id": rid}
    error = assert_openai_error(bob.post("/v1/responses", json=body), 404)
    assert error.get("param") in (None, "previous_response_id")
    with pytest.raises(openai.NotFoundError):
        oai(tenants_url, BOB).responses.retrieve(rid)
    assert alice.responses.retrieve(rid).output_text == reply.output_text   # bob's DELETE did nothing
    assert alice.responses.input_items.list(rid).data
    # alice's own response, once idle past the TTL, is a 404 that names it and says why
    def expired() -> dict | None:
        got = httpx.get(f"{tenants_url}/v1/responses/{rid}", headers=auth(ALICE), timeout=60)
        return got.json()["error"] if got.status_code == 404 else None
    error = wait_for(expired, RESPONSE_TTL_S + 60, "the response to expire")
    assert rid in error["message"] and "expired" in error["message"], error
    error = assert_openai_error(httpx.post(f"{tenants_url}/v1/responses", headers=auth(ALICE), timeout=60,
                                           json=body), 404)
    assert rid in error["message"] and "expired" in error["message"], error


def test_a_rotated_key_stops_working_without_restart(tenants_url, keys_file, alice_session):
    old, new = "tenant-key-carol-1", "tenant-key-carol-2"

    def status(key: str) -> int:
        return httpx.get(f"{tenants_url}/v1/sessions", headers=auth(key), timeout=60).status_code

    assert status(old) == 401
    write_keys(keys_file, {**BASE_KEYS, old: ("carol", False)})
    wait_for(lambda: status(old) == 200, 60, "the added key to work")
    carols = create(tenants_url, {"context": "Carol's desk is 4B.", "press": {"name": "none"}}, headers=auth(old))
    write_keys(keys_file, {**BASE_KEYS, new: ("carol", False)})                # rotate: old out, new in
    wait_for(lambda: status(old) == 401 and status(new) == 200, 60, "the rotation to take effect")
    assert_openai_error(httpx.get(f"{tenants_url}/v1/sessions/{carols['id']}", headers=auth(old), timeout=60), 401,
                        "invalid_api_key")
    got = httpx.get(f"{tenants_url}/v1/sessions/{carols['id']}", headers=auth(new), timeout=60)
    assert got.status_code == 200 and got.json()["id"] == carols["id"]     # same owner, new key
    assert httpx.get(f"{tenants_url}/v1/sessions/{alice_session['id']}", headers=auth(ALICE),
                     timeout=60).status_code == 200                        # others unaffected


# ---- through the LiteLLM proxy -------------------------------------------------------------------
# A real ``litellm`` proxy in front of this app, holding BOB's kvfleet key (as a proxy's own key
# comes from a Secret on Kubernetes): whoever calls the proxy acts as bob on kvfleet.

PROMPT2 = PROMPT.replace("Internal memo.", "Second memo.")


@pytest.fixture(scope="module")
def proxy_as_bob(tenants_url, tmp_path_factory) -> Iterator[tuple[str, str]]:
    from tests.e2e.litellm_support import litellm_config, litellm_proxy, missing_proxy_requirements

    if missing_proxy_requirements():
        pytest.skip(f"the LiteLLM proxy server needs: pip install {' '.join(missing_proxy_requirements())}")
    workdir = tmp_path_factory.mktemp("litellm-tenants")
    config = litellm_config({"kvfleet-a": f"{tenants_url}/v1", "kvfleet-b": f"{tenants_url}/v1"},
                            workdir / "sessions.sqlite3")
    config["model_list"] = config["model_list"][:1]
    config["model_list"][0]["litellm_params"]["api_key"] = BOB
    port = int(os.environ.get("KVFLEET_E2E_PORT", "8310")) + 3
    with litellm_proxy(config, workdir, port) as started:
        yield started


@pytest.mark.slow
def test_through_the_proxy_another_tenant_sees_nothing(tenants_url, alice_session, proxy_as_bob):
    proxy, master = proxy_as_bob
    sid = alice_session["id"]
    http = httpx.Client(base_url=proxy, headers=auth(master), timeout=HTTP_TIMEOUT_S)
    assert http.get(f"/v1/sessions/{sid}", params={"model": "kvfleet"}).status_code == 404
    assert http.patch(f"/v1/sessions/{sid}", params={"model": "kvfleet"}, json={"ttl_s": 1}).status_code == 404
    assert http.delete(f"/v1/sessions/{sid}", params={"model": "kvfleet"}).status_code == 404
    asked = http.post("/v1/chat/completions", json={"model": "kvfleet", "messages": user("Code?"), "max_tokens": 4,
                                                    "session_id": sid})
    assert asked.status_code == 404, asked.text
    assert [plain2(tenants_url, ALICE)[1] for _ in range(2)][1] > 0     # alice has PROMPT2 cached
    via_proxy = openai.OpenAI(base_url=f"{proxy}/v1", api_key=master, timeout=HTTP_TIMEOUT_S, max_retries=0)
    reply = via_proxy.chat.completions.create(model="kvfleet", messages=user(PROMPT2), temperature=0, max_tokens=8)
    assert reply.usage.prompt_tokens_details.cached_tokens == 0          # alice's prefix is not bob's
    salted = via_proxy.chat.completions.create(model="kvfleet", messages=user(PROMPT2), temperature=0, max_tokens=8,
                                               extra_body={"cache_salt": "user-1"})
    assert salted.usage.prompt_tokens_details.cached_tokens == 0         # the proxy passed cache_salt on
    assert via_proxy.chat.completions.create(model="kvfleet", messages=user(PROMPT2), temperature=0, max_tokens=8
                                             ).usage.prompt_tokens_details.cached_tokens > 0  # bob's own entry
    view = httpx.get(f"{tenants_url}/v1/sessions/{sid}", headers=auth(ALICE), timeout=60).json()
    assert view["state"] == "ready" and view["ttl_s"] == alice_session["ttl_s"]


def plain2(url: str, key: str) -> tuple[str, int]:
    reply = oai(url, key).chat.completions.create(model=MODEL, messages=user(PROMPT2), temperature=0, max_tokens=8)
    return reply.choices[0].message.content, reply.usage.prompt_tokens_details.cached_tokens


@pytest.mark.slow
def test_sessions_api_passes_through_the_proxy(tenants_url, proxy_as_bob):
    proxy, master = proxy_as_bob
    http = httpx.Client(base_url=proxy, headers=auth(master), timeout=HTTP_TIMEOUT_S)
    created = http.post("/v1/sessions", json={"model": "kvfleet", "context": "Bob's locker code is 1187.",
                                              "press": {"name": "none"}, "ttl_s": 600})
    assert created.status_code == 200, created.text
    sid = created.json()["id"]
    patched = http.patch(f"/v1/sessions/{sid}", json={"ttl_s": 900, "pinned": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["ttl_s"] == 900 and patched.json()["pinned"] is True and patched.json()["expire_time"] is None
    assert patched.json()["router"]["home"] == "kvfleet-a"
    bad = http.patch(f"/v1/sessions/{sid}", json={"ttl_s": 10, "expire_time": 2_000_000_000})
    assert bad.status_code == 400 and bad.json()["error"]["message"], bad.text
    assert http.patch(f"/v1/sessions/{sid}", json={"color": "red"}).status_code == 400
    listed = http.get("/v1/sessions", params={"model": "kvfleet", "limit": 1000, "state": "ready"})
    assert listed.status_code == 200, listed.text
    assert sid in [s["id"] for s in listed.json()["data"]] and listed.json()["object"] == "list"
    assert http.get("/v1/sessions", params={"model": "kvfleet", "after": "sess_unknown"}).status_code == 400
    mine = httpx.get(f"{tenants_url}/v1/sessions/{sid}", headers=auth(BOB), timeout=60).json()
    assert mine["ttl_s"] == 900 and mine["pinned"] is True                # the change reached kvfleet, as bob's
    assert httpx.get(f"{tenants_url}/v1/sessions/{sid}", headers=auth(ALICE), timeout=60).status_code == 404
    assert http.delete(f"/v1/sessions/{sid}").status_code == 200
