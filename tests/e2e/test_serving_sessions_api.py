"""Sessions API at parity with hosted context caches, on the shared app: PATCH (``ttl_s`` or
``expire_time``, ``pinned``), ``expire_time`` in the view, GET /v1/sessions pages (``limit``,
``after``, ``order``) and filters (``state``, ``model``), and the same OpenAI error JSON for every bad
call. (Owners and API keys: test_serving_tenants.py.)"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.e2e.conftest import assert_openai_error, create, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
SMALL = "The secret code of the vault is 7341."


@pytest.fixture(scope="module")
def three(app_url) -> list[dict]:
    """Three small READY sessions, created in this order (press none: cheap)."""
    return [create(app_url, {"context": f"{SMALL} Session number {i}.", "press": {"name": "none"}, "ttl_s": 900})
            for i in range(3)]


def test_view_has_expire_time(three):
    s = three[0]
    assert s["expire_time"] == pytest.approx(s["last_used"] + s["ttl_s"])


def test_patch_ttl_expire_time_and_pinned(http, three):
    sid = three[0]["id"]
    view = http.patch(f"/v1/sessions/{sid}", json={"ttl_s": 1234}).json()
    assert view["ttl_s"] == 1234 and view["expire_time"] == pytest.approx(view["last_used"] + 1234)
    target = time.time() + 3600
    when = dt.datetime.fromtimestamp(round(target), dt.timezone.utc).isoformat().replace("+00:00", "Z")
    view = http.patch(f"/v1/sessions/{sid}", json={"expire_time": when}).json()
    assert view["expire_time"] == pytest.approx(round(target), abs=1e-3)
    view = http.patch(f"/v1/sessions/{sid}", json={"expire_time": round(target) + 60}).json()  # Unix seconds too
    assert view["expire_time"] == pytest.approx(round(target) + 60, abs=1e-3)
    view = http.patch(f"/v1/sessions/{sid}", json={"pinned": True}).json()
    assert view["pinned"] is True and view["expire_time"] is None          # pinned sessions never expire
    assert http.get(f"/v1/sessions/{sid}").json()["pinned"] is True
    view = http.patch(f"/v1/sessions/{sid}", json={"pinned": False, "ttl_s": None}).json()
    assert view["pinned"] is False and view["ttl_s"] is None and view["expire_time"] is None
    reply = http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("What is the secret code?"),
                                                    "temperature": 0, "max_tokens": 12, "session_id": sid})
    assert reply.status_code == 200, reply.text                              # still answers


def test_a_shortened_ttl_expires_the_session(http, app_url):
    s = create(app_url, {"context": SMALL, "press": {"name": "none"}})
    assert http.patch(f"/v1/sessions/{s['id']}", json={"ttl_s": 1}).status_code == 200
    deadline = time.monotonic() + 120
    while http.get(f"/v1/sessions/{s['id']}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert_openai_error(http.get(f"/v1/sessions/{s['id']}"), 404, "session_not_found")


@pytest.mark.parametrize("body, code", [
    ({}, "invalid_request"),
    ({"ttl_s": 10, "expire_time": 2_000_000_000}, "invalid_request"),
    ({"expire_time": 1_000_000_000}, "invalid_request"),                    # in the past
    ({"expire_time": "next tuesday"}, "invalid_request"),
    ({"ttl_s": -5}, "invalid_request"),
    ({"pinned": None}, "invalid_request"),
    ({"state": "ready"}, "invalid_request"),                               # not a PATCHable field
])
def test_bad_patches_are_400(http, three, body, code):
    assert_openai_error(http.patch(f"/v1/sessions/{three[1]['id']}", json=body), 400, code)


def test_patch_unknown_session_is_404(http):
    assert_openai_error(http.patch("/v1/sessions/sess_nope", json={"ttl_s": 5}), 404, "session_not_found")


def test_list_pages_filters_and_order(http, three):
    ids = [s["id"] for s in three]
    walked, after = [], None
    while True:
        page = http.get("/v1/sessions", params={"limit": 2, **({"after": after} if after else {})}).json()
        assert page["object"] == "list" and len(page["data"]) <= 2
        walked += [s["id"] for s in page["data"]]
        if not page["has_more"]:
            break
        assert page["last_id"] == page["data"][-1]["id"]
        after = page["last_id"]
    assert len(walked) == len(set(walked)) and set(ids) <= set(walked)
    assert [i for i in walked if i in ids] == ids[::-1]                      # newest first by default
    ascending = http.get("/v1/sessions", params={"order": "asc", "limit": 1000}).json()["data"]
    assert [s["id"] for s in ascending if s["id"] in ids] == ids
    ready = http.get("/v1/sessions", params={"state": "ready", "limit": 1000}).json()["data"]
    assert set(ids) <= {s["id"] for s in ready} and all(s["state"] == "ready" for s in ready)
    assert http.get("/v1/sessions", params={"model": "other-model"}).json()["data"] == []
    same_model = http.get("/v1/sessions", params={"model": MODEL, "limit": 1000}).json()["data"]
    assert set(ids) <= {s["id"] for s in same_model}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"state": "sleeping"},
                                    {"order": "up"}, {"after": "sess_unknown"}])
def test_bad_list_parameters_are_400(http, params):
    assert_openai_error(http.get("/v1/sessions", params=params), 400)
