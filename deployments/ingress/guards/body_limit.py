"""Reject oversized HTTP request bodies before they are read or parsed (413, OpenAI error JSON).

An ASGI middleware on the ingress app: a declared ``Content-Length`` above the limit is answered
at once, without reading a byte of the body; a body without one (chunked) is counted as it is
read, answered 413 as soon as the count passes the limit, and the route sees a disconnected
client (its own reply is dropped), so no route ever parses more than ``limits.max_body_bytes``
(what nginx's ``client_max_body_size`` does in front of a server).

The limit is a class attribute the Ingress sets from ``AppConfig.limits.max_body_bytes`` at
start-up (the same pattern as ``RequestMetricsMiddleware.metrics``): one ingress per process.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from deployments.ingress.errors import APIError, error_body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyTooLarge(APIError):
    def __init__(self, size: str, limit: int):
        super().__init__(413, f"request body of {size} bytes exceeds this server's limit of {limit} bytes "
                              "(limits.max_body_bytes)", "request_too_large")


class BodyLimitMiddleware:
    max_body_bytes: int = 8 << 20

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = type(self).max_body_bytes
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await _answer(send, BodyTooLarge(str(declared), limit))
            return
        received, answered = 0, False

        async def counting_receive() -> dict:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not answered:
                    # answer now; the route sees a disconnected client and whatever it sends is dropped
                    answered = True
                    await _answer(send, BodyTooLarge(f"more than {limit}", limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


async def _answer(send: Send, error: APIError) -> None:
    body = json.dumps(error_body(error)).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
