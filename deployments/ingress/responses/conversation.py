"""A conversation turn as token ids: what to feed after the stored cache it continues.

The state of a chain is its conversation as plain chat messages (``role``, string ``content``:
tool calls already rendered as text by deployments/ingress/tools/render.py). A turn renders the
conversation + its new input with the chat template and keeps only the text after the stored
part (the same splice as a question on a session, deployments/engine/prompt.py), so only the new
tokens are fed. Three starts:

- ``first_turn``: no stored cache; the whole prompt is new.
- ``after_response``: a stored response; its conversation ends with the assistant turn it produced.
- ``after_session``: a stored session (kvfleet's ``session_id``): a document session keeps the
  document at the start of the first user message (kvpress's layout), a chat session its messages.

After generation the stored cache also covers the assistant's answer and the template's end of an
assistant turn (``closing_ids``; ``<|im_end|>\\n`` for ChatML), so the next turn starts exactly at
a turn boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployments.engine.prompt import PromptError, PromptFrame, PromptRenderer, normalize_messages

_SENTINEL = "\x00KVFLEET\x00"


@dataclass(frozen=True)
class Turn:
    """``conversation``: the chain's messages through this turn's input; ``input_ids``: the tokens
    to feed after the stored cache (the whole prompt on a first turn)."""

    conversation: list[dict[str, Any]]
    input_ids: list[int]


class ConversationRenderer:
    def __init__(self, renderer: PromptRenderer):
        self.renderer = renderer
        self.closing_ids = renderer.encode(self._closing_text())

    def _closing_text(self) -> str:
        """The template's text after an assistant answer (what ends a turn); raises PromptError for
        a template that does not put the answer verbatim after its generation prompt."""
        if not self.renderer.has_template:
            return "\n"  # question_text's fallback layout: each turn ends with a newline
        user = [{"role": "user", "content": "x"}]
        head = self.renderer.render(user, add_generation_prompt=True)
        whole = self.renderer.render([*user, {"role": "assistant", "content": _SENTINEL}], add_generation_prompt=False)
        if not whole.startswith(head + _SENTINEL):
            raise PromptError("this model's chat template rewrites assistant answers; conversation state "
                              "(previous_response_id) cannot be kept as a cache for it")
        return whole[len(head) + len(_SENTINEL):]

    def first_turn(self, messages: list[dict[str, Any]]) -> Turn:
        conversation = normalize_messages(messages)
        if not self.renderer.has_template:
            text = "".join(m["content"] for m in conversation) + "\n"
        else:
            text = self.renderer.render(conversation, add_generation_prompt=True)
        return Turn(conversation, self.renderer.encode(text))

    def after_response(self, previous: list[dict[str, Any]], messages: list[dict[str, Any]]) -> Turn:
        frame = PromptFrame("chat", self._stored_text(previous), messages=tuple(previous))
        ids = self.renderer.encode(self.renderer.question_text(frame, messages))
        return Turn([*previous, *normalize_messages(messages)], ids)

    def after_session(self, context: dict[str, Any], messages: list[dict[str, Any]]) -> Turn:
        """``context``: the session record's context (``text`` or ``messages``)."""
        new = normalize_messages(messages)
        if context.get("messages") is not None:
            frame = self.renderer.chat_frame(list(context["messages"]))
            ids = self.renderer.encode(self.renderer.question_text(frame, new))
            return Turn([*frame.messages, *new], ids)
        if context.get("text") is None:
            raise PromptError("this session was loaded from raw token ids; a conversation needs a text or "
                              "messages session")
        frame = self.renderer.document_frame(context["text"])
        ids = self.renderer.encode(self.renderer.question_text(frame, new))
        first_user = next(i for i, m in enumerate(new) if m["role"] == "user")  # question_text checked it
        merged = [dict(m) for m in new]
        merged[first_user]["content"] = context["text"] + merged[first_user]["content"]
        return Turn(merged, ids)

    def _stored_text(self, conversation: list[dict[str, Any]]) -> str:
        if not self.renderer.has_template:
            return "".join(m["content"] + ("\n" if m["role"] == "assistant" else "") for m in conversation)
        return self.renderer.render(conversation, add_generation_prompt=False)
