"""HTTP client for a running kvfleet: sessions, streamed chat completions with timings.

``ask`` streams a chat completion (server-sent events) and records when the first content token
arrived (TTFT, as the client sees it: HTTP + ingress + replica + model) and when the last did.
Every call has a timeout; an HTTP error raises ``KVFleetHTTPError`` with the server's message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

MODEL = "embedded:smollm2-135m-instruct"


class KVFleetHTTPError(RuntimeError):
    """The server answered with an error status; ``status`` and the OpenAI error message are kept."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Answer:
    """One streamed completion: text, timings (seconds from sending the request) and usage."""

    text: str
    ttft_s: float
    total_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first per second of streaming (None with fewer than 2 tokens)."""
        if self.completion_tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.completion_tokens - 1) / (self.total_s - self.ttft_s)

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of the whole request (prefill included)."""
        return self.completion_tokens / self.total_s if self.total_s > 0 else 0.0


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = body.get("error", {}).get("message") or body.get("detail") or response.text
    except (json.JSONDecodeError, AttributeError):
        message = response.text
    raise KVFleetHTTPError(response.status_code, str(message)[:500])


class KVFleetClient:
    """Thin synchronous client; one ``httpx.Client`` (thread-safe) shared by all calls."""

    def __init__(self, base_url: str, model: str = MODEL, timeout_s: float = 600.0, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers,
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    def close(self) -> None:
        self.http.close()

    def health(self) -> dict:
        response = self.http.get("/health", timeout=10)
        _raise_for(response)
        return response.json()

    def create_session(self, context: str | list[dict], press: dict | None, **extra: Any) -> dict:
        """POST /v1/sessions (waits for the prefill); returns the session view plus ``client_load_s``.

        ``context``: text, or chat messages (sent as ``messages``)."""
        key = "messages" if isinstance(context, list) else "context"
        body = {"model": self.model, key: context, **extra}
        if press is not None:
            body["press"] = press
        start = time.perf_counter()
        response = self.http.post("/v1/sessions", json=body)
        _raise_for(response)
        view = response.json()
        view["client_load_s"] = time.perf_counter() - start
        return view

    def get_session(self, session_id: str) -> dict:
        response = self.http.get(f"/v1/sessions/{session_id}", timeout=30)
        _raise_for(response)
        return response.json()

    def delete_session(self, session_id: str, missing_ok: bool = False) -> None:
        """DELETE the session; ``missing_ok``: a 404 (already gone, e.g. lost in a restart) is fine."""
        response = self.http.delete(f"/v1/sessions/{session_id}", timeout=60)
        if missing_ok and response.status_code == 404:
            return
        _raise_for(response)

    def ask(self, messages: list[dict], session_id: str | None = None, max_tokens: int = 16,
            ignore_eos: bool = False, press: dict | None = None, stop: tuple[str, ...] = ()) -> Answer:
        """Stream a greedy chat completion; TTFT = first chunk carrying content."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens,
                                "stream": True, "stream_options": {"include_usage": True}}
        if session_id is not None:
            body["session_id"] = session_id
        if ignore_eos:
            body["ignore_eos"] = True
        if stop:
            body["stop"] = list(stop)
        if press is not None:
            body["press"] = press
        start = time.perf_counter()
        first = last = None
        text: list[str] = []
        usage: dict[str, Any] = {}
        with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise KVFleetHTTPError(500, event["error"].get("message", "error in stream"))
                usage = event.get("usage") or usage
                for choice in event.get("choices", []):
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        now = time.perf_counter()
                        first = first if first is not None else now
                        last = now
                        text.append(piece)
        end = time.perf_counter()
        first = first if first is not None else end
        last = last if last is not None else end
        details = usage.get("prompt_tokens_details") or {}
        return Answer("".join(text), first - start, last - start, int(usage.get("completion_tokens", 0)),
                      int(usage.get("prompt_tokens", 0)), int(details.get("cached_tokens", 0) or 0))
