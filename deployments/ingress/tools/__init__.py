"""Tool calling (OpenAI function tools) for any generation API: chat completions, responses.

Plain JSON values in, small dataclasses out - nothing here knows a request class:

- ``plan_tools(tools, tool_choice, parallel_tool_calls, messages) -> ToolPlan`` (plan.py): parses
  Chat Completions ``tools`` / ``tool_choice``, checks the tool-calling history and compiles the
  schemas; raises ``ToolError`` (400, ``.param`` / ``.code``). ``ToolPlan.guided`` is the
  ``GuidedSpec`` to decode under (``SamplingParams.guided``); ``ToolPlan.prompt_messages(messages,
  placement)`` the plain messages to render. The parts, for other request shapes (e.g. Responses
  function tools ``{"type": "function", "name", "parameters", "strict"}``):
  ``parse_function(obj, param) -> FunctionTool``, ``parse_tool_choice``, ``check_history``
  (schema.py); ``check_compiles``, ``guided_spec(tools, choice, parallel)`` (grammar.py);
  ``with_tools`` / ``render_history`` (render.py, the documented fallback format).
- ``parse_turn(text, choice, final) -> ParsedTurn(content, calls)`` (parse.py): generated text ->
  calls (``ParsedCall(name, arguments, complete)``); ``tool_calls(turn, seed)`` -> OpenAI
  ``message.tool_calls`` with ids ``call_id(seed, k)``; ``finish_reason(turn, generated)``.
- ``ToolDeltaStream(choice, seed).feed(text, final) -> [delta]`` (stream.py): OpenAI streamed
  tool-call deltas whose concatenation equals the non-streamed reply.

Formats and limits: docs/tools.md. Imports: deployments.engine.sampling (the grammar compiler).
"""

from deployments.ingress.tools.grammar import call_schema, check_compiles, guided_spec
from deployments.ingress.tools.parse import ParsedCall, ParsedTurn, call_id, finish_reason, parse_turn, tool_calls
from deployments.ingress.tools.plan import ToolPlan, plan_tools
from deployments.ingress.tools.render import render_history, tools_block, with_tools
from deployments.ingress.tools.schema import (FunctionTool, ToolChoice, ToolError, check_history, parse_function,
                                              parse_tool_choice, parse_tools)
from deployments.ingress.tools.stream import ToolDeltaStream

__all__ = ["FunctionTool", "ParsedCall", "ParsedTurn", "ToolChoice", "ToolDeltaStream", "ToolError", "ToolPlan",
           "call_id", "call_schema", "check_compiles", "check_history", "finish_reason", "guided_spec",
           "parse_function", "parse_tool_choice", "parse_tools", "parse_turn", "plan_tools", "render_history",
           "tool_calls", "tools_block", "with_tools"]
