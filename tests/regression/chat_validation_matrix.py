"""Chat-completions request validation matrix (issue 14 item 4).

Built from the OpenAI API reference (Chat Completions request body: ``messages`` and its system,
developer, user, assistant, tool and function messages and content parts; the numeric ranges)
and vLLM's ``ChatCompletionRequest`` (``top_p`` in (0, 1], strict types). Each row: an id, the
changes to a valid base body (``messages`` replaced when given; ``None`` deletes a field), the
expected status, the ``param`` the error must name, and the error ``code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODEL = "embedded:smollm2-135m-instruct"
BASE: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
                        "temperature": 0}
DELETE = object()


@dataclass(frozen=True)
class Row:
    id: str
    change: dict
    status: int
    param: str | None = None
    code: str = "invalid_request"

    def body(self) -> dict:
        body = dict(BASE)
        for key, value in self.change.items():
            if value is DELETE:
                body.pop(key, None)
            else:
                body[key] = value
        return body


def U(content: Any = "hi", **extra: Any) -> dict:
    return {"role": "user", "content": content, **extra}


def M(*messages: dict) -> dict:
    return {"messages": list(messages)}


IMG = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
UNSUPPORTED = "unsupported_parameter"

ROWS = [
    # ---- valid requests (200) ----
    Row("ok-text", {}, 200),
    Row("ok-text-parts", M(U([{"type": "text", "text": "h"}, {"type": "text", "text": "i"}])), 200),
    Row("ok-developer-and-name", M({"role": "developer", "content": "be brief"}, U(name="ann")), 200),
    Row("ok-history", M({"role": "system", "content": [{"type": "text", "text": "sys"}]}, U(),
                        {"role": "assistant", "content": "hello", "refusal": None}, U("again")), 200),
    # ---- top level: model, messages ----
    Row("model-missing", {"model": DELETE}, 400, "model"),
    Row("model-not-string", {"model": 5}, 400, "model"),
    Row("model-unknown", {"model": "gpt-nope"}, 404, "model", "model_not_found"),
    Row("messages-missing", {"messages": DELETE}, 400, "messages"),
    Row("messages-not-array", {"messages": "hi"}, 400, "messages"),
    Row("messages-empty", {"messages": []}, 400, "messages"),
    # ---- a message ----
    Row("message-not-object", {"messages": ["hi"]}, 400, "messages[0]"),
    Row("role-missing", M({"content": "hi"}), 400, "messages[0].role"),
    Row("role-unknown", M({"role": "wizard", "content": "hi"}), 400, "messages[0].role"),
    Row("role-not-string", M({"role": 5, "content": "hi"}), 400, "messages[0].role"),
    Row("user-content-missing", M({"role": "user"}), 400, "messages[0].content"),
    Row("system-content-missing", M({"role": "system"}, U()), 400, "messages[0].content"),
    Row("developer-content-null", M({"role": "developer", "content": None}, U()), 400, "messages[0].content"),
    Row("user-content-null", M(U(None)), 400, "messages[0].content"),
    Row("content-number", M(U(5)), 400, "messages[0].content"),
    Row("content-object", M(U({"type": "text", "text": "hi"})), 400, "messages[0].content"),
    Row("content-empty-array", M(U([])), 400, "messages[0].content"),
    Row("name-not-string", M(U(name=5)), 400, "messages[0].name"),
    Row("message-unknown-key", M(U(foo=1)), 400, "messages[0].foo"),
    Row("error-in-second-message", M(U(), {"role": "user", "content": 7}), 400, "messages[1].content"),
    Row("assistant-without-content", M(U(), {"role": "assistant"}, U()), 400, "messages[1].content"),
    Row("assistant-refusal-not-string", M(U(), {"role": "assistant", "content": "x", "refusal": 1}, U()), 400,
        "messages[1].refusal"),
    # ---- content parts ----
    Row("part-not-object", M(U(["hi"])), 400, "messages[0].content[0]"),
    Row("part-type-missing", M(U([{"text": "hi"}])), 400, "messages[0].content[0].type"),
    Row("part-type-unknown", M(U([{"type": "video", "video": {}}])), 400, "messages[0].content[0].type"),
    Row("text-part-text-missing", M(U([{"type": "text"}])), 400, "messages[0].content[0].text"),
    Row("text-part-text-not-string", M(U([{"type": "text", "text": 1}])), 400, "messages[0].content[0].text"),
    Row("text-part-unknown-key", M(U([{"type": "text", "text": "a", "foo": 1}])), 400,
        "messages[0].content[0].foo"),
    Row("second-part-bad", M(U([{"type": "text", "text": "a"}, {"type": "text"}])), 400,
        "messages[0].content[1].text"),
    Row("image-part-url-missing", M(U([{"type": "image_url", "image_url": {}}])), 400,
        "messages[0].content[0].image_url.url"),
    Row("image-part-object-missing", M(U([{"type": "image_url"}])), 400, "messages[0].content[0].image_url"),
    Row("image-part-detail-bad", M(U([{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}])), 400,
        "messages[0].content[0].image_url.detail"),
    Row("audio-part-format-bad", M(U([{"type": "input_audio", "input_audio": {"data": "AA", "format": "ogg"}}])),
        400, "messages[0].content[0].input_audio.format"),
    Row("file-part-field-not-string", M(U([{"type": "file", "file": {"file_id": 3}}])), 400,
        "messages[0].content[0].file.file_id"),
    Row("system-image-part", M({"role": "system", "content": [IMG]}, U()), 400, "messages[0].content[0].type"),
    Row("user-refusal-part", M(U([{"type": "refusal", "refusal": "no"}])), 400, "messages[0].content[0].type"),
    Row("image-part-valid-but-unsupported", M(U([IMG])), 400, "messages[0].content[0].type", UNSUPPORTED),
    # ---- tools and functions in messages ----
    Row("tool-message-id-missing", M(U(), {"role": "tool", "content": "r"}), 400, "messages[1].tool_call_id"),
    Row("tool-message-without-call", M(U(), {"role": "tool", "content": "r", "tool_call_id": "c"}), 400,
        "messages[1].role"),
    Row("tool-message-unknown-id", M(U(), {"role": "assistant", "tool_calls": [CALL]},
                                     {"role": "tool", "content": "r", "tool_call_id": "call_2"}), 400,
        "messages[2].tool_call_id"),
    Row("tool-call-arguments-not-json", M(U(), {"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": "{oops"}}]}), 400, "messages[1].tool_calls[0].function.arguments"),
    Row("function-message-unsupported", M(U(), {"role": "function", "content": "r", "name": "f"}), 400,
        "messages[1].role", UNSUPPORTED),
    Row("function-message-name-missing", M(U(), {"role": "function", "content": "r"}), 400, "messages[1].name"),
    Row("tool-calls-not-array", M(U(), {"role": "assistant", "tool_calls": {}}), 400, "messages[1].tool_calls"),
    Row("tool-call-function-name-missing",
        M(U(), {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": ""}}]}),
        400, "messages[1].tool_calls[0].function.name"),
    Row("ok-tool-call-history", M(U(), {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                  {"role": "tool", "content": "r", "tool_call_id": "call_1"}, U("so?")), 200),
    # ---- types and ranges of the other fields ----
    Row("temperature-string", {"temperature": "1"}, 400, "temperature"),
    Row("temperature-bool", {"temperature": True}, 400, "temperature"),
    Row("temperature-above-2", {"temperature": 2.5}, 400, "temperature"),
    Row("temperature-negative", {"temperature": -1}, 400, "temperature"),
    Row("top-p-above-1", {"top_p": 1.5}, 400, "top_p"),
    Row("top-p-zero", {"top_p": 0}, 400, "top_p"),
    Row("n-zero", {"n": 0}, 400, "n"),
    Row("n-above-128", {"n": 129}, 400, "n"),
    Row("n-string", {"n": "2"}, 400, "n"),
    Row("max-tokens-zero", {"max_tokens": 0}, 400, "max_tokens"),
    Row("max-tokens-float", {"max_tokens": 1.5}, 400, "max_tokens"),
    Row("max-completion-tokens-zero", {"max_completion_tokens": 0}, 400, "max_completion_tokens"),
    Row("stream-string", {"stream": "yes"}, 400, "stream"),
    Row("stream-int", {"stream": 1}, 400, "stream"),
    Row("logprobs-string", {"logprobs": "true"}, 400, "logprobs"),
    Row("top-logprobs-above-20", {"logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
    Row("top-logprobs-negative", {"logprobs": True, "top_logprobs": -1}, 400, "top_logprobs"),
    Row("top-logprobs-without-logprobs", {"top_logprobs": 2}, 400, "top_logprobs"),
    Row("stop-number", {"stop": 5}, 400, "stop"),
    Row("stop-five", {"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    Row("presence-penalty-above-2", {"presence_penalty": 3}, 400, "presence_penalty"),
    Row("frequency-penalty-below-minus-2", {"frequency_penalty": -3}, 400, "frequency_penalty"),
    Row("logit-bias-out-of-range", {"logit_bias": {"42": 200}}, 400, "logit_bias"),
    Row("seed-string", {"seed": "x"}, 400, "seed"),
    Row("seed-float", {"seed": 1.5}, 400, "seed"),
    Row("user-not-string", {"user": 5}, 400, "user"),
    Row("session-id-not-string", {"session_id": 5}, 400, "session_id"),
    Row("stream-options-without-stream", {"stream_options": {"include_usage": True}}, 400, "stream_options"),
    Row("stream-options-field-type", {"stream": True, "stream_options": {"include_usage": "yes"}}, 400,
        "stream_options.include_usage"),
    Row("unknown-field", {"bogus": 1}, 400, "bogus"),
]
