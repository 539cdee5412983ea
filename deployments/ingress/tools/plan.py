"""One request's tool calling, decided before any work: parsed tools and choice, the checked
history, the decoding constraint and the prompt messages.

``plan_tools(tools, tool_choice, parallel_tool_calls, messages)`` takes the request's raw JSON
values and returns a ``ToolPlan``; it raises ``ToolError`` (HTTP 400, ``param`` names the field)
for a bad tool or choice, bad history (see schema.check_history) or a schema llguidance cannot
compile (code ``unsupported_schema``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployments.engine.sampling import GuidedSpec
from deployments.ingress.tools.grammar import check_compiles, guided_spec
from deployments.ingress.tools.render import Placement, with_tools
from deployments.ingress.tools.schema import FunctionTool, ToolChoice, check_history, parse_tool_choice, parse_tools


@dataclass(frozen=True)
class ToolPlan:
    """``guided``: the constraint (None for ``none``); ``parses``: whether answers are read as calls."""

    tools: tuple[FunctionTool, ...]
    choice: ToolChoice
    parallel: bool
    guided: GuidedSpec | None

    @property
    def parses(self) -> bool:
        return self.choice.mode != "none"

    def prompt_messages(self, messages: list[dict[str, Any]], placement: Placement = "system") -> list[dict[str, Any]]:
        """Plain ``{role, content}`` messages for the chat template (render.with_tools)."""
        return with_tools(messages, self.tools, self.choice, self.parallel, placement)


def plan_tools(tools: Any, tool_choice: Any, parallel_tool_calls: bool | None,
               messages: list[dict[str, Any]]) -> ToolPlan:
    parsed = parse_tools(tools)
    choice = parse_tool_choice(tool_choice, parsed)
    check_history(messages)
    parallel = parallel_tool_calls is not False
    if choice.mode != "none":
        check_compiles(parsed)
    return ToolPlan(parsed, choice, parallel, guided_spec(parsed, choice, parallel))
