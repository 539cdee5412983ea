"""How a request without a session is served: split the prompt into a prefix to prefill (and
compress when long) and a final turn fed uncompressed, the way a session would be.

- one user message: the message is the document, the question is empty (kvpress layout);
- otherwise: every message but the last is the context (chat layout), the last is the question.

The press applies only when the prefix is at least ``compression_threshold_tokens`` long
(``PressSpec.min_tokens``), so short prompts are answered exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from deployments.engine.prompt import normalize_messages
from kvpool.press_spec import PressSpec


@dataclass(frozen=True)
class PlainPlan:
    prefix: str | list[dict[str, Any]]
    suffix: list[dict[str, Any]]
    press: dict


class PlainPressSettings(Protocol):
    """What the planner reads of ``AppConfig.plain`` (``PlainRequestConfig``), named structurally so
    that common/ does not import the config that itself builds on common/."""

    press: PressSpec
    compression_threshold_tokens: int


class PlainPromptPlanner:
    def __init__(self, config: PlainPressSettings):
        self.config = config

    def press(self, press: dict | None = None) -> dict:
        """The press a plain prompt's prefix is read under: ``press`` (or the configured default),
        applied only from ``compression_threshold_tokens`` on."""
        spec = PressSpec.model_validate(press) if press else self.config.press
        spec = spec.model_copy(update={"min_tokens": max(spec.min_tokens, self.config.compression_threshold_tokens)})
        return spec.model_dump(mode="json")

    def plan(self, messages: list[dict[str, Any]], press: dict | None = None) -> PlainPlan:
        messages = normalize_messages(messages)
        press_json = self.press(press)
        if len(messages) == 1 and messages[0]["role"] == "user":
            return PlainPlan(messages[0]["content"], [{"role": "user", "content": ""}], press_json)
        return PlainPlan(messages[:-1], messages[-1:], press_json)
