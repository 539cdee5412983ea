"""Untrusted input against the real app (issue 19): a request cannot make the server import code or
touch files, bad input costs bounded work (413 for a 30 MB body, 413 for a huge context before any
tokenization, 400 for every multiplier over its limit), admin bodies are validated (no 500), and
the OpenAPI document describes the real request and reply models. After each, the server answers."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.e2e.conftest import HTTP_TIMEOUT_S, assert_openai_error, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def server_stays_up(http: httpx.Client):
    yield
    reply = http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("Say hi."), "max_tokens": 2})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("press", [
    {"name": "this:Nope"},                                            # the example
    {"name": "os:system"},
    {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "antigravity:Press"}]},
])
def test_a_press_import_path_that_is_not_allowlisted_is_422(http, press):
    for route, body in (("/v1/sessions", {"model": MODEL, "context": "Alice was born in Lisbon.", "press": press}),
                        ("/v1/chat/completions", {"model": MODEL, "messages": user("hi"), "press": press})):
        error = assert_openai_error(http.post(route, json=body), 422, "invalid_press")
        assert "not allowlisted" in error["message"] and "allowlisted: none" in error["message"]
        assert "No module named" not in error["message"] and "installed" not in error["message"]


def test_a_30_mb_body_is_413_and_other_clients_are_served(app_url, http):
    body = b'{"model": "%s", "context": "' % MODEL.encode() + b"a" * (30 << 20) + b'"}'
    answers: list[int] = []

    def other_client() -> None:
        reply = httpx.post(f"{app_url}/v1/chat/completions", timeout=HTTP_TIMEOUT_S,
                           json={"model": MODEL, "messages": user("Say hi."), "max_tokens": 2})
        answers.append(reply.status_code)

    thread = threading.Thread(target=other_client)
    thread.start()
    reply = http.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
    thread.join(HTTP_TIMEOUT_S)
    error = assert_openai_error(reply, 413, "request_too_large")
    assert "limits.max_body_bytes" in error["message"]
    assert answers == [200]


def test_a_huge_context_under_the_body_limit_is_413_before_tokenizing(http):
    error = assert_openai_error(http.post("/v1/sessions", json={"model": MODEL, "context": "a " * (3 << 20)}),
                                413, "context_length_exceeded")
    assert "characters" in error["message"]  # refused by the character bound, not by a full count
    assert_openai_error(http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("b " * (3 << 20))}),
                        413, "context_length_exceeded")


@pytest.mark.parametrize("route, body, param", [
    ("/v1/chat/completions", {"messages": user("hi") * 600}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 65}]},
     "messages[0].content"),
    ("/v1/chat/completions", {"messages": user("hi"), "stop": "x" * 300}, "stop[0]"),
    ("/v1/sessions", {"documents": ["a"] * 300}, "documents"),
    ("/v1/sessions", {"context": "hi", "press": {"name": "composed", "presses": [{"name": "knorm"}] * 9}}, "press"),
])
def test_multipliers_over_their_limit_are_400(http, route, body, param):
    error = assert_openai_error(http.post(route, json={"model": MODEL, **body}), 400, "limit_exceeded")
    assert error["param"] == param


@pytest.mark.parametrize("route, body", [
    ("/admin/lookup", {}),                                             # was a 500 (issue 19)
    ("/admin/lookup", {"session_id": "s", "token_ids": [1]}),
    ("/admin/lookup", {"token_ids": []}),
    ("/admin/clear", {}),
    ("/admin/clear", {"all": True, "replica": "replica-0"}),
    ("/admin/pin", {"session_id": 3}),
    ("/admin/move", {"session_id": "s", "method": "teleport"}),
    ("/admin/compress", {"session_id": "s"}),
    ("/admin/drain", []),
    ("/admin/drain", {"replica": ""}),
])
def test_bad_admin_bodies_are_400(http, route, body):
    assert_openai_error(http.post(route, json=body), 400, "invalid_request")


def test_admin_lookup_of_an_unknown_session_is_404(http):
    assert_openai_error(http.post("/admin/lookup", json={"session_id": "sess_nope"}), 404, "session_not_found")


def test_unknown_routes_and_methods_answer_openai_errors(http):
    assert_openai_error(http.get("/v1/nothing-here"), 404, "not_found")
    assert_openai_error(http.put("/v1/sessions"), 405, "method_not_allowed")


def test_openapi_describes_the_real_request_and_reply_models(http):
    doc = http.get("/openapi.json").json()

    def body_ref(path: str) -> str:
        return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    def reply_ref(path: str, method: str = "post") -> str:
        return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    assert body_ref("/v1/chat/completions").endswith("/ChatCompletionRequest")
    assert body_ref("/v1/sessions").endswith("/SessionCreateRequest")
    assert body_ref("/admin/lookup").endswith("/LookupRequest")
    assert body_ref("/admin/clear").endswith("/ClearRequest")
    assert reply_ref("/v1/chat/completions").endswith("/ChatCompletion")
    assert reply_ref("/v1/sessions").endswith("/Session")
    assert reply_ref("/admin/move").endswith("/EventRef")
    schemas = doc["components"]["schemas"]
    assert {"model", "messages", "max_tokens", "stop", "n"} <= set(schemas["ChatCompletionRequest"]["properties"])
    assert schemas["ErrorResponse"]["properties"]["error"]
    assert doc["paths"]["/v1/sessions"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"] \
        .endswith("/ErrorResponse")
