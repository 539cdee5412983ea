"""Build OpenAI chat-completion responses and stream chunks from the decode actor's token dicts."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _logprob_entry(item: dict) -> dict:
    """OpenAI ``ChatCompletionTokenLogprob`` from the replica's ``{"token", "logprob", "bytes",
    "top_logprobs"}``: ``bytes`` are the token's own bytes (deployments.engine.token_bytes), never
    re-encoded from its text, which is lossy for a token holding part of a character."""
    def one(entry: dict) -> dict:
        return {"token": entry["token"], "logprob": entry["logprob"], "bytes": entry["bytes"]}

    lp = item["logprob"]
    return {**one(lp), "top_logprobs": [one(t) for t in lp["top_logprobs"]]}


@dataclass
class ChoiceAccumulator:
    """Collects one choice's streamed token dicts into a final message."""

    index: int
    text: list[str] = field(default_factory=list)
    logprobs: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def add(self, item: dict) -> None:
        self.text.append(item["text"])
        if "logprob" in item:
            self.logprobs.append(_logprob_entry(item))
        self.prompt_tokens = item["prompt_tokens"]
        self.cached_tokens = item.get("cached_tokens", 0)
        self.completion_tokens = item["completion_tokens"]
        if item["finish_reason"]:
            self.finish_reason = "stop" if item["finish_reason"] == "cancelled" else item["finish_reason"]

    def choice(self, with_logprobs: bool) -> dict:
        return {"index": self.index, "message": {"role": "assistant", "content": "".join(self.text)},
                "logprobs": {"content": self.logprobs} if with_logprobs else None,
                "finish_reason": self.finish_reason or "length"}


def usage(choices: list[ChoiceAccumulator], session_tokens: int) -> dict:
    """OpenAI usage of one request. ``session_tokens``: the stored session context it was asked on
    (0 for a plain request), which the replica's counts leave out; a plain request's own prompt
    count already includes a reused compressed prefix, which the replica reports as cached."""
    prompt = choices[0].prompt_tokens + session_tokens
    completion = sum(c.completion_tokens for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": session_tokens + choices[0].cached_tokens}}


def completion_body(cid: str, model: str, choices: list[ChoiceAccumulator], with_logprobs: bool,
                    session_tokens: int, session_id: str | None) -> dict:
    body = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [c.choice(with_logprobs) for c in choices], "usage": usage(choices, session_tokens)}
    if session_id is not None:
        body["session_id"] = session_id
    return body


def chunk(cid: str, model: str, created: int, delta: dict, index: int = 0, finish_reason: str | None = None,
          logprobs: dict | None = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]}


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


SSE_DONE = "data: [DONE]\n\n"
