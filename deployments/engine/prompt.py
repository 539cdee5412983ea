"""How a context and later questions become token ids, exactly as kvpress's pipeline does it.

A session's context is rendered once into ``prefix_text`` (the chat-template text before the
question). A question is rendered as the *whole* conversation and must start with that prefix;
the remainder (question + template tail) is tokenized on its own, like kvpress tokenizes context
and question separately. Two layouts:

- ``document``: the context is the start of the first user turn (kvpress's layout):
  ``template([user: context + question])``.
- ``chat``: the context is a list of messages (a chat history); questions are appended turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvpool.errors import KVFleetError

Message = dict[str, Any]
_SEPARATOR_CHAR = "#"


class PromptError(KVFleetError, ValueError):
    """The question cannot be spliced after the stored context (HTTP 400)."""


@dataclass(frozen=True)
class PromptFrame:
    """The rendered context of a session (JSON-able through ``to_json``)."""

    kind: str  # "document" | "chat" | "tokens"
    prefix_text: str
    context: str = ""
    messages: tuple[Message, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "prefix_text": self.prefix_text, "context": self.context,
                "messages": [dict(m) for m in self.messages]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PromptFrame":
        return cls(data["kind"], data["prefix_text"], data.get("context", ""),
                   tuple(dict(m) for m in data.get("messages", ())))


def _content_text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text is supported
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise PromptError("only text content parts are supported")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    if content is None:
        return ""
    raise PromptError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


def normalize_messages(messages: list[Message]) -> list[Message]:
    """Validate OpenAI chat messages and flatten content parts to plain strings."""
    if not messages:
        raise PromptError("messages must not be empty")
    out = []
    for m in messages:
        role = m.get("role") if isinstance(m, dict) else None
        if not isinstance(role, str) or role not in {"system", "user", "assistant", "developer"}:
            raise PromptError("each message needs a role of system, developer, user or assistant")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": _content_text(m)})
    return out


class PromptRenderer:
    """Renders contexts and questions with a tokenizer's chat template (or kvpress's fallback)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    @property
    def has_template(self) -> bool:
        return self.tokenizer.chat_template is not None

    def render(self, messages: list[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def document_frame(self, context: str) -> PromptFrame:
        """kvpress layout: template(user: context + SEP) split at SEP."""
        if not self.has_template:
            bos = getattr(self.tokenizer, "bos_token", "") or ""
            return PromptFrame("document", bos + context, context=context)
        separator = _SEPARATOR_CHAR * (len(context) + 10)
        rendered = self.render([{"role": "user", "content": context + separator}], add_generation_prompt=True)
        prefix, _ = rendered.split(separator)
        return PromptFrame("document", prefix, context=context)

    def chat_frame(self, messages: list[Message]) -> PromptFrame:
        messages = normalize_messages(messages)
        if not self.has_template:
            raise PromptError("this model has no chat template; load the context as text instead of messages")
        return PromptFrame("chat", self.render(messages, add_generation_prompt=False), messages=tuple(messages))

    def question_text(self, frame: PromptFrame, question: str | list[Message]) -> str:
        """The text to feed after ``frame``'s cached context for ``question``."""
        messages = [{"role": "user", "content": question}] if isinstance(question, str) else normalize_messages(question)
        if frame.kind == "tokens":
            raise PromptError("this cache was built from raw token ids; send token ids, not messages")
        if not self.has_template:
            return "".join(m["content"] for m in messages) + "\n"
        if frame.kind == "document":
            first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
            if first_user is None or any(m["role"] == "system" for m in messages):
                raise PromptError("questions on a document session need a user message and no system message "
                                  "(set the system prompt when loading the context, as messages)")
            messages = [dict(m) for m in messages]
            messages[first_user]["content"] = frame.context + messages[first_user]["content"]
        else:
            messages = [*frame.messages, *messages]
        full = self.render(messages, add_generation_prompt=True)
        if not full.startswith(frame.prefix_text):
            raise PromptError("the question changes the stored context (e.g. a different system prompt); "
                              "send only the new turns after the session's context")
        return full[len(frame.prefix_text):]
