"""Per-request multipliers are bounded by AppConfig.limits (deployments/ingress/guards/limits.py) and the body
size before parsing (deployments/ingress/guards/body_limit.py), on a real FastAPI app over real ASGI."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from deployments.ingress.guards.body_limit import BodyLimitMiddleware
from deployments.config import LimitsConfig
from deployments.ingress.errors import error_body
from deployments.ingress.guards.limits import LimitExceeded, RequestLimits
from deployments.ingress.chat.schema import ChatCompletionRequest
from deployments.ingress.sessions.schema import SessionCreateRequest

LIMITS = RequestLimits(LimitsConfig(max_messages=3, max_content_parts=2, max_documents=2, max_stop_sequences=2,
                                    max_stop_chars=5, max_top_logprobs=2, max_press_nodes=2))
USER = {"role": "user", "content": "hi"}


def chat(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **fields})


@pytest.mark.parametrize("fields, param", [
    ({"messages": [USER] * 4}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 3}]}, "messages[0].content"),
    ({"stop": ["a", "b", "c"]}, "stop"),
    ({"stop": "abcdef"}, "stop[0]"),
    ({"logprobs": True, "top_logprobs": 3}, "top_logprobs"),
    ({"press": {"name": "adakv", "presses": [{"name": "critical_kv", "presses": [{"name": "knorm"}]}]}}, "press"),
])
def test_chat_multipliers_over_the_limit_are_400_naming_the_field(fields, param):
    with pytest.raises(LimitExceeded) as info:
        LIMITS.check_chat(chat(**fields))
    body = error_body(info.value)["error"]
    assert info.value.status == 400 and body["code"] == "limit_exceeded" and body["param"] == param
    assert "limits." in body["message"]


def test_requests_within_the_limits_pass():
    LIMITS.check_chat(chat(messages=[USER] * 3, stop=["a", "bcdef"], logprobs=True, top_logprobs=2,
                           press={"name": "adakv", "presses": [{"name": "knorm"}]}))
    LIMITS.check_session(SessionCreateRequest(model="m", documents=["a", "b"]))


def test_session_documents_and_messages_are_bounded():
    with pytest.raises(LimitExceeded, match="documents: 3"):
        LIMITS.check_session(SessionCreateRequest(model="m", documents=["a", "b", "c"]))
    with pytest.raises(LimitExceeded, match="messages: 4"):
        LIMITS.check_session(SessionCreateRequest(model="m", messages=[USER] * 4))
    with pytest.raises(LimitExceeded, match="token_ids"):
        RequestLimits(LimitsConfig(max_lookup_token_ids=3)).check_lookup([1, 2, 3, 4])


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return {"keys": len(body)}

    app.add_middleware(BodyLimitMiddleware)
    return app


async def _post(app: FastAPI, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post("/echo", **kwargs)


def test_bodies_over_the_limit_are_413_declared_or_chunked(monkeypatch):
    monkeypatch.setattr(BodyLimitMiddleware, "max_body_bytes", 1024)
    app = _app()
    small = asyncio.run(_post(app, json={"a": 1}))
    assert small.status_code == 200 and small.json() == {"keys": 1}
    big = asyncio.run(_post(app, content=b'{"a": "' + b"x" * 5000 + b'"}',
                            headers={"content-type": "application/json"}))
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    async def chunks():  # no Content-Length: counted while read
        for _ in range(10):
            yield b"x" * 500

    chunked = asyncio.run(_post(app, content=chunks(), headers={"content-type": "application/json"}))
    assert chunked.status_code == 413 and "limits.max_body_bytes" in chunked.json()["error"]["message"]


@pytest.mark.parametrize("fields, param, code", [
    ({"n": 5}, "n", "n_too_large"),
    ({"max_tokens": 2049}, "max_tokens", "max_tokens_too_large"),
    ({"max_completion_tokens": 2049}, "max_completion_tokens", "max_tokens_too_large"),
])
def test_n_and_max_tokens_are_bounded_with_the_guards(fields, param, code):
    """n and max_tokens are bounded in guards/limits.py with the other multipliers, before any work."""
    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)
    with pytest.raises(Exception) as caught:
        RequestLimits(LimitsConfig(max_n=4, max_tokens_limit=2048)).check_chat(req)
    body = error_body(caught.value)["error"]
    assert (body["code"], body["param"]) == (code, param)
