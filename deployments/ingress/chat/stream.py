"""Server-sent events of a chat completion (``stream: true``), as OpenAI streams them.

One ``chat.completion.chunk`` per token of each of the ``n`` choices (their ``index`` tells them
apart): an opening role delta, the echo (vLLM's chat ``echo``), then content deltas - or, when
the answers are read as tool calls, the tool-call deltas of tools/stream.py, parsed exactly as
the non-streamed reply is - a finish chunk per choice, a usage chunk when
``stream_options.include_usage`` asks (with ``continuous_usage_stats`` too, vLLM's extra: every
chunk also carries the usage so far), and ``[DONE]``. Joined, the deltas equal the
non-streamed reply byte for byte. A failure mid-stream is reported in-band as an OpenAI error
object, then the stream ends; the replica's streams are cancelled however it ends (client
disconnect included).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from deployments.ingress.chat.replies import ChoiceAccumulator, chunk, completion_id, usage
from deployments.ingress.chat.schema import ChatCompletionRequest
from deployments.ingress.errors import error_body, to_api_error
from deployments.ingress.failover import cancel_all
from deployments.ingress.sse import SSE_DONE, sse
from deployments.ingress.tools import ToolChoice, ToolDeltaStream, finish_reason


@dataclass(frozen=True)
class ToolCalls:
    """How a request's answers are read: as tool calls of ``choice`` (None: plain text), with ids
    from ``seed`` and the choice index (the same in streamed and non-streamed replies)."""

    choice: ToolChoice | None
    seed: str

    def stream(self, index: int) -> ToolDeltaStream | None:
        return None if self.choice is None else ToolDeltaStream(self.choice, f"{self.seed}:{index}")


@dataclass(frozen=True)
class StreamSetup:
    """What one streamed reply needs besides its streams: the served model's name, the echoed text
    (prepended to every choice), the per-item timeout (s), and callbacks for the token counts
    (choices, elapsed seconds) and for the end of the stream."""

    model_name: str
    echo: str
    timeout_s: float
    count_tokens: Callable[[list[ChoiceAccumulator], float], None]
    done: Callable[[], None] | None = None


async def chat_events(req: ChatCompletionRequest, streams: list, first: list[dict], cached: int, request: Any,
                      calls: ToolCalls, setup: StreamSetup) -> AsyncIterator[str]:
    """The SSE lines of one chat completion: ``streams`` are the replica's token-dict streams
    (one per choice), ``first`` their first items (already taken, so errors before streaming
    were HTTP errors), ``cached`` the prompt tokens read from a stored cache (usage)."""
    cid, created, start = completion_id(), int(time.time()), time.perf_counter()
    name = setup.model_name
    choices = [ChoiceAccumulator(i) for i in range(len(streams))]
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    continuous = include_usage and req.stream_options.continuous_usage_stats
    for choice, item in zip(choices, first):
        choice.prompt_tokens = item["prompt_tokens"]  # known before any token: usage from the first chunk

    def event(payload: dict) -> str:
        if continuous:
            payload["usage"] = usage(choices, cached)
        return sse(payload)

    try:
        for i in range(len(streams)):
            opening = {"role": "assistant", "content": None if calls.choice else ""}
            yield event(chunk(cid, name, created, opening, i))
            if setup.echo:
                choices[i].text.append(setup.echo)
                yield event(chunk(cid, name, created, {"content": setup.echo}, i))
        for i, stream in enumerate(streams):
            pending = [first[i]]
            tool_stream = calls.stream(i)
            while True:
                for item in pending:
                    choices[i].add(item)
                    logprobs = {"content": choices[i].logprobs[-1:]} if "logprob" in item else None
                    if tool_stream is None:
                        deltas = [{"content": item["text"]}] if item["text"] or logprobs else []
                    else:  # tool-call deltas: the same parse as the non-streamed reply
                        deltas = tool_stream.feed("".join(choices[i].text), final=bool(item["finish_reason"]))
                    for delta in deltas:
                        yield event(chunk(cid, name, created, delta, i, logprobs=logprobs))
                        logprobs = None
                    if logprobs:  # a token with nothing to send yet (e.g. a held-back "<tool")
                        yield event(chunk(cid, name, created, {}, i, logprobs=logprobs))
                    if item["finish_reason"]:
                        finish = choices[i].finish_reason
                        if tool_stream is not None:
                            finish = finish_reason(tool_stream.turn, finish)
                        yield event(chunk(cid, name, created, {}, i, finish))
                if choices[i].finish_reason or await request.is_disconnected():
                    break
                try:
                    pending = [await asyncio.wait_for(stream.__anext__(), setup.timeout_s)]
                except StopAsyncIteration:
                    break
        if include_usage:
            yield sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                       "model": name, "choices": [], "usage": usage(choices, cached)})
        yield SSE_DONE
        setup.count_tokens(choices, time.perf_counter() - start)
    except Exception as exc:  # mid-stream failure: report it in-band, then end the stream
        yield sse(error_body(to_api_error(exc)))
        yield SSE_DONE
    finally:
        cancel_all(streams)
        if setup.done is not None:
            setup.done()
