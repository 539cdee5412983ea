"""Chat Completions replies: the reply models (OpenAI's ``ChatCompletion`` object, shown in the
OpenAPI document) and the code that builds replies and stream chunks from the decode actor's
token dicts - one model per object, used both to build and to document.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from deployments.common.schema_base import OpenModel
from deployments.ingress.tools import ToolChoice, finish_reason, parse_turn, tool_calls


class FunctionCall(OpenModel):
    name: str
    arguments: str  # JSON text, exactly as generated


class ToolCall(OpenModel):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(OpenModel):
    """``content`` is null when the answer is only tool calls (``tool_calls``, docs/tools.md)."""

    role: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(OpenModel):
    index: int
    message: ChatMessage
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class PromptTokensDetails(OpenModel):
    cached_tokens: int = 0


class Usage(OpenModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class ChatCompletion(OpenModel):
    """``stream: false``. With ``stream: true`` the reply is ``text/event-stream`` of
    ``chat.completion.chunk`` objects ending with ``data: [DONE]``."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    session_id: str | None = None


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

    def choice(self, with_logprobs: bool, tools: ToolChoice | None = None, call_seed: str = "") -> Choice:
        """``tools``: read the answer as tool calls of that choice (ids from ``call_seed``)."""
        text, finish = "".join(self.text), self.finish_reason or "length"
        message = ChatMessage(role="assistant", content=text)
        if tools is not None and tools.mode != "none":
            turn = parse_turn(text, tools)
            calls = tool_calls(turn, call_seed)
            message = ChatMessage(role="assistant", content=turn.content or None,  # as streamed: no text, null
                                  **({"tool_calls": calls} if calls else {}))
            finish = finish_reason(turn, finish)
        return Choice(index=self.index, message=message,
                      logprobs={"content": self.logprobs} if with_logprobs else None, finish_reason=finish)


def usage(choices: list[ChoiceAccumulator], session_tokens: int) -> dict:
    """OpenAI usage of one request. ``session_tokens``: the stored session context it was asked on
    (0 for a plain request), which the replica's counts leave out; a plain request's own prompt
    count already includes a reused compressed prefix, which the replica reports as cached."""
    return _usage(choices, session_tokens).model_dump(exclude_unset=True)


def _usage(choices: list[ChoiceAccumulator], session_tokens: int) -> Usage:
    prompt = choices[0].prompt_tokens + session_tokens
    completion = sum(c.completion_tokens for c in choices)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=session_tokens + choices[0].cached_tokens))


def completion_body(cid: str, model: str, choices: list[ChoiceAccumulator], with_logprobs: bool,
                    session_tokens: int, session_id: str | None, tools: ToolChoice | None = None,
                    call_seed: str = "") -> dict:
    """The ``ChatCompletion`` of a finished request (``session_id`` only when asked on a session;
    ``tools``: answers are read as calls, ids from ``call_seed`` and the choice index)."""
    extra = {} if session_id is None else {"session_id": session_id}
    built = [c.choice(with_logprobs, tools, f"{call_seed}:{c.index}") for c in choices]
    reply = ChatCompletion(id=cid, object="chat.completion", created=int(time.time()), model=model,
                           choices=built, usage=_usage(choices, session_tokens), **extra)
    return reply.model_dump(exclude_unset=True)


def chunk(cid: str, model: str, created: int, delta: dict, index: int = 0, finish_reason: str | None = None,
          logprobs: dict | None = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]}
