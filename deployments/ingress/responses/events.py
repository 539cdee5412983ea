"""The Responses API stream: the event sequence of one response, built from the replica's token
dicts, and its framing (``event: <type>\\ndata: <json>\\n\\n``).

``ResponseStream`` is the one place a response's output is assembled; the non-streamed reply is
the ``response`` of the same object after the same events, so a streamed and a non-streamed
request say the same thing. Sequence (openai-python ``types/responses/response_*_event.py``):

1. ``response.created``, ``response.in_progress`` (``response`` with status ``in_progress``);
2. text: ``response.output_item.added`` (message, ``in_progress``), ``response.content_part.added``,
   ``response.output_text.delta`` per decoded piece, ``response.output_text.done``,
   ``response.content_part.done``, ``response.output_item.done``;
   function calls (tools): per call ``response.output_item.added`` (function_call),
   ``response.function_call_arguments.delta``, ``response.function_call_arguments.done``,
   ``response.output_item.done``, at ``output_index`` 0, 1, ...;
3. ``response.completed`` (status ``completed``), or ``response.incomplete`` (status
   ``incomplete``, ``incomplete_details.reason`` ``max_output_tokens``) when the answer was cut.

Every event carries ``sequence_number``, 0 first, +1 per event. A failure after the stream began
is one ``error`` event (``code``, ``message``, ``param``) and the stream ends.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from deployments.ingress.chat.replies import _logprob_entry
from deployments.ingress.responses.items import new_item_id
from deployments.ingress.responses.replies import function_call_item, message_item, usage


def frame(event: dict[str, Any]) -> str:
    """One server-sent event: ``event: <type>`` and its JSON on one ``data:`` line."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


class ResponseStream:
    """Feed the replica's token dicts with ``add``; each call returns the events it produced.

    ``response``: the skeleton (replies.skeleton), completed in place. ``cached_tokens``: tokens of
    the stored cache the turn continued (0 on a first turn). ``text_events``: False when the text
    may turn out to be tool calls (it is then parsed once complete, by ``finish(calls=...)``).
    """

    def __init__(self, response: dict[str, Any], cached_tokens: int, with_logprobs: bool, text_events: bool = True):
        self.response = response
        self.cached_tokens = cached_tokens
        self.with_logprobs = with_logprobs
        self.text_events = text_events
        self.seq = 0
        self.text: list[str] = []
        self.logprobs: list[dict] = []
        self.message_id = new_item_id("msg")
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.output_tokens = 0
        self._open = False

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def _snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.response)

    def start(self) -> list[dict[str, Any]]:
        return [self._event("response.created", response=self._snapshot()),
                self._event("response.in_progress", response=self._snapshot())]

    def add(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Events for one replica token dict (``text``, ``finish_reason``, counts, ``logprob``)."""
        events = []
        self.prompt_tokens = item["prompt_tokens"]
        self.output_tokens = item["completion_tokens"]
        if item["finish_reason"]:
            self.finish_reason = item["finish_reason"]
        logprobs = []
        if "logprob" in item:
            entry = _logprob_entry(item)
            logprobs = [entry]
            self.logprobs.append(entry)
        if not item["text"] and not logprobs:
            return events
        self.text.append(item["text"])
        if not self.text_events:
            return events
        if not self._open:
            events += self._open_message()
        events.append(self._event("response.output_text.delta", item_id=self.message_id, output_index=0,
                                  content_index=0, delta=item["text"], logprobs=logprobs))
        return events

    def _open_message(self) -> list[dict[str, Any]]:
        self._open = True
        item = message_item(self.message_id, "", "in_progress", [] if self.with_logprobs else None)
        item["content"] = []
        part = {"type": "output_text", "text": "", "annotations": [], **({"logprobs": []} if self.with_logprobs else {})}
        return [self._event("response.output_item.added", output_index=0, item=item),
                self._event("response.content_part.added", item_id=self.message_id, output_index=0,
                            content_index=0, part=part)]

    @property
    def output_text(self) -> str:
        return "".join(self.text)

    @property
    def incomplete(self) -> bool:
        return self.finish_reason == "length"

    def finish(self, calls: list[dict[str, Any]] | None = None, content: str | None = None,
               before_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """The closing events. ``calls``: function calls parsed from the text (``{"call_id",
        "name", "arguments"}``), then ``content`` is the text around them (None: none). The
        response's ``output``, ``status`` and ``usage`` are set here; ``before_done(response)``
        runs before the terminal event is built (the route stores the response there)."""
        status = "incomplete" if self.incomplete else "completed"
        events: list[dict[str, Any]] = []
        output: list[dict[str, Any]] = []
        text = self.output_text if calls is None else content
        if text is not None and (text or calls is None):
            lp = self.logprobs if self.with_logprobs else None
            if not self._open:
                events += self._open_message()
                if text:
                    events.append(self._event("response.output_text.delta", item_id=self.message_id, output_index=0,
                                              content_index=0, delta=text, logprobs=lp or []))
            done = message_item(self.message_id, text, status, lp)
            events += [
                self._event("response.output_text.done", item_id=self.message_id, output_index=0, content_index=0,
                            text=text, logprobs=lp or []),
                self._event("response.content_part.done", item_id=self.message_id, output_index=0, content_index=0,
                            part=done["content"][0]),
                self._event("response.output_item.done", output_index=0, item=done)]
            output.append(done)
        for call in calls or []:
            index = len(output)
            item_id = new_item_id("fc")
            started = function_call_item(item_id, call["call_id"], call["name"], "", "in_progress")
            done = function_call_item(item_id, call["call_id"], call["name"], call["arguments"], "completed")
            events += [
                self._event("response.output_item.added", output_index=index, item=started),
                self._event("response.function_call_arguments.delta", item_id=item_id, output_index=index,
                            delta=call["arguments"]),
                self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                            name=call["name"], arguments=call["arguments"]),
                self._event("response.output_item.done", output_index=index, item=done)]
            output.append(done)
        self.response.update(
            status=status, output=output,
            incomplete_details={"reason": "max_output_tokens"} if self.incomplete else None,
            usage=usage(self.prompt_tokens + self.cached_tokens, self.cached_tokens, self.output_tokens))
        if before_done is not None:
            before_done(self.response)
        events.append(self._event(f"response.{status}", response=self._snapshot()))
        return events

    def error(self, code: str, message: str, param: str | None = None) -> dict[str, Any]:
        return self._event("error", code=code, message=message, param=param)
