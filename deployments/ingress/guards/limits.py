"""Per-request bounds: every field that multiplies a request's work has a configured maximum.

The same multipliers vLLM's OpenAI server bounds (``n``, ``top_logprobs``, ``max_tokens``, stop
strings, messages and their content parts, OpenAI's 128 tools) plus kvfleet's own (documents per session, presses in
one spec, token ids in an admin lookup). Limits live in ``AppConfig.limits`` (``LimitsConfig``);
the body size is bounded before parsing by ``deployments.ingress.guards.body_limit`` and the context length
before full tokenization by ``deployments.ingress.guards.context_limit``.

Every violation is an ``APIError`` 400 with code ``limit_exceeded`` (``n_too_large`` and
``max_tokens_too_large`` for those two, as before) whose message names the field, the value and
the limit (the ``param`` of the OpenAI error is the field).
"""

from __future__ import annotations

import json
from typing import Any

from deployments.ingress.errors import APIError
from kvpool.press_spec import PressSpec


class LimitExceeded(APIError):
    def __init__(self, field: str, value: int, limit: int, config_field: str):
        super().__init__(400, f"{field}: {value} exceeds this server's limit of {limit} (limits.{config_field})",
                         "limit_exceeded")
        self.param = field


def check_vocabulary(tokens: list[int], vocab_size: int, field: str) -> None:
    """400 ``invalid_token_id`` naming ``field[i]`` for the first id outside ``0..vocab_size - 1``
    (``vocab_size``: the ids the served model can read)."""
    for i, token in enumerate(tokens):
        if not 0 <= token < vocab_size:
            raise APIError(400, f"{field}[{i}] = {token} is not a token id of this model (0..{vocab_size - 1})",
                           "invalid_token_id", param=f"{field}[{i}]")


def press_nodes(spec: PressSpec) -> int:
    """Presses in ``spec``, the wrappers and every nested inner press included."""
    return 1 + sum(press_nodes(child) for child in spec.presses)


class RequestLimits:
    """Checks one parsed request against ``limits`` (a ``LimitsConfig``); raises LimitExceeded."""

    def __init__(self, limits: Any):
        self.limits = limits

    def _bound(self, field: str, value: int, config_field: str) -> None:
        limit = getattr(self.limits, config_field)
        if value > limit:
            raise LimitExceeded(field, value, limit, config_field)

    def check_messages(self, messages: list[dict[str, Any]] | None, field: str = "messages") -> None:
        if not messages:
            return
        self._bound(field, len(messages), "max_messages")
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                self._bound(f"{field}[{i}].content", len(content), "max_content_parts")

    def check_press(self, spec: PressSpec | None) -> None:
        if spec is not None:
            self._bound("press", press_nodes(spec), "max_press_nodes")

    def check_n(self, n: int) -> None:
        """Choices per request (``n``): code ``n_too_large``."""
        if n > self.limits.max_n:
            raise APIError(400, f"n={n} exceeds this server's limit {self.limits.max_n}", "n_too_large", param="n")

    def check_max_tokens(self, max_tokens: int, field: str = "max_tokens") -> None:
        """Tokens to generate (``field`` names the request field that asked for them): code
        ``max_tokens_too_large``."""
        if max_tokens > self.limits.max_tokens_limit:
            raise APIError(400, f"max_tokens {max_tokens} exceeds this server's limit {self.limits.max_tokens_limit}",
                           "max_tokens_too_large", param=field)

    def check_chat(self, req: Any) -> None:
        """A ``ChatCompletionRequest``: n, max_tokens, messages, content parts, stop strings,
        top_logprobs, tools, press."""
        self.check_n(req.n)
        if req.max_completion_tokens:
            self.check_max_tokens(req.max_completion_tokens, "max_completion_tokens")
        elif req.max_tokens:
            self.check_max_tokens(req.max_tokens)
        self.check_messages(req.messages)
        self.check_stops(req.stop_list())
        self._bound("top_logprobs", req.top_logprobs or 0, "max_top_logprobs")
        self.check_tools(req.tools)
        self.check_press(req.press)

    def check_stops(self, stops: tuple[str, ...]) -> None:
        """Stop strings (chat and text completions): how many, and each one's characters."""
        self._bound("stop", len(stops), "max_stop_sequences")
        for i, stop in enumerate(stops):
            self._bound(f"stop[{i}]", len(stop), "max_stop_chars")

    def check_tools(self, tools: list[Any] | None, field: str = "tools") -> None:
        """Tools per request and each tool's size as compact JSON, before any schema is compiled."""
        if not tools:
            return
        self._bound(field, len(tools), "max_tools")
        for i, tool in enumerate(tools):
            size = len(json.dumps(tool, separators=(",", ":"), ensure_ascii=False).encode())
            self._bound(f"{field}[{i}]", size, "max_tool_schema_bytes")

    def check_completion(self, req: Any) -> None:
        """A ``CompletionRequest``: choices (prompts x n), n, max_tokens, stop strings, logprobs, press (each
        prompt's length is bounded by the route: characters, tokens, token ids)."""
        self.check_n(req.n)
        prompts = len(req.prompts())
        if prompts * req.n > self.limits.max_prompts:  # every prompt gets n choices: the work is their product
            raise APIError(400, f"prompt: {prompts} prompts x n={req.n} = {prompts * req.n} choices exceed this "
                                f"server's limit of {self.limits.max_prompts} (limits.max_prompts)", "limit_exceeded",
                           param="prompt")
        if req.max_tokens:
            self.check_max_tokens(req.max_tokens)
        self.check_stops(req.stop_list())
        self._bound("logprobs", req.logprobs or 0, "max_top_logprobs")
        self.check_press(req.press)

    def check_session(self, req: Any) -> None:
        """A ``SessionCreateRequest``: documents, messages and their parts, press."""
        if req.documents is not None:
            self._bound("documents", len(req.documents), "max_documents")
        self.check_messages(req.messages)
        self.check_press(req.press)

    def check_lookup(self, token_ids: list[int] | None) -> None:
        if token_ids is not None:
            self._bound("token_ids", len(token_ids), "max_lookup_token_ids")
