"""Completions replies: OpenAI's ``Completion`` object (``object: "text_completion"``) as vLLM
returns it, the legacy ``logprobs`` block, and the code that builds replies and stream chunks
from the replica's token dicts.

``logprobs`` (when the request sets ``logprobs: k``): ``tokens`` (each token's text),
``token_logprobs`` (its log-prob; null for the first prompt token under ``echo``),
``top_logprobs`` (per token a ``{token text: log-prob}`` dict of the ``k`` most likely tokens plus
the chosen one, as OpenAI documents "up to logprobs+1 elements"; null where the log-prob is null)
and ``text_offset`` (each token's start in the choice's ``text``, counted in characters of the
token texts, as vLLM counts them).

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from deployments.common.schema_base import OpenModel
from deployments.ingress.chat.replies import Usage


class CompletionLogprobs(OpenModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(OpenModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class Completion(OpenModel):
    """``stream: false``. With ``stream: true`` the reply is ``text/event-stream`` of objects of the
    same shape (each choice's ``text`` a piece), ending with ``data: [DONE]``."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    session_id: str | None = None


def completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex[:24]}"


def _top(entry: dict) -> dict[str, float]:
    """The ``{token: logprob}`` alternatives of one token dict's logprob entry, the chosen one included."""
    top = {t["token"]: t["logprob"] for t in entry["top_logprobs"]}
    top.setdefault(entry["token"], entry["logprob"])
    return top


@dataclass
class TextChoice:
    """One choice of one prompt: the echoed prompt (if asked), then the replica's token dicts."""

    index: int
    with_logprobs: bool
    text: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    cached_tokens: int = 0
    _chars: int = 0

    def echo(self, prompt_text: str, prompt_logprobs: list[dict] | None) -> dict:
        """Prepend the prompt and its tokens' log-prob entries (the first one's ``logprob`` null);
        returns the stream piece."""
        mark = len(self.tokens)
        self.text.append(prompt_text)
        for entry in prompt_logprobs or ():
            self._token(entry["token"], entry["logprob"], None if entry["logprob"] is None else _top(entry))
        return self._piece(prompt_text, mark)

    def add(self, item: dict) -> dict | None:
        """Take one token dict; returns its stream piece (None when it carries nothing)."""
        mark = len(self.tokens)
        self.text.append(item["text"])
        if "logprob" in item:
            entry = item["logprob"]
            self._token(entry["token"], entry["logprob"], _top(entry))
        self.completion_tokens = item["completion_tokens"]
        self.cached_tokens = item.get("cached_tokens", 0)
        if item["finish_reason"]:
            self.finish_reason = "stop" if item["finish_reason"] == "cancelled" else item["finish_reason"]
        if not item["text"] and len(self.tokens) == mark and not item["finish_reason"]:
            return None
        return self._piece(item["text"], mark, self.finish_reason if item["finish_reason"] else None)

    def _token(self, token: str, logprob: float | None, top: dict[str, float] | None) -> None:
        self.tokens.append(token)
        self.token_logprobs.append(logprob)
        self.top_logprobs.append(top)
        self.text_offset.append(self._chars)
        self._chars += len(token)

    def _logprobs(self, start: int = 0) -> CompletionLogprobs:
        return CompletionLogprobs(tokens=self.tokens[start:], token_logprobs=self.token_logprobs[start:],
                                  top_logprobs=self.top_logprobs[start:], text_offset=self.text_offset[start:])

    def _piece(self, text: str, mark: int, finish_reason: str | None = None) -> dict:
        logprobs = self._logprobs(mark).model_dump() if self.with_logprobs else None
        return {"index": self.index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}

    def choice(self) -> CompletionChoice:
        return CompletionChoice(index=self.index, text="".join(self.text),
                                logprobs=self._logprobs() if self.with_logprobs else None,
                                finish_reason=self.finish_reason or "length")


def usage(prompt_tokens: int, choices: list[TextChoice], cached_tokens: int) -> Usage:
    """OpenAI usage: ``prompt_tokens`` of every prompt (a session's stored context included, and
    counted as cached), ``completion_tokens`` of every choice."""
    completion = sum(c.completion_tokens for c in choices)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion,
                 prompt_tokens_details={"cached_tokens": cached_tokens})


def completion_body(cid: str, model: str, choices: list[TextChoice], usage_: Usage, session_id: str | None) -> dict:
    extra = {} if session_id is None else {"session_id": session_id}
    reply = Completion(id=cid, object="text_completion", created=int(time.time()), model=model,
                       choices=[c.choice() for c in choices],
                       usage=usage_, **extra)
    return reply.model_dump(exclude_unset=True)


def chunk(cid: str, model: str, created: int, piece: dict) -> dict[str, Any]:
    return {"id": cid, "object": "text_completion", "created": created, "model": model, "choices": [piece]}
