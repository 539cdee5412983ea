"""OpenAI streamed tool-call deltas from a growing answer text.

``ToolDeltaStream(choice, seed).feed(text, final)`` re-parses the answer so far (parse.py: the
parse only grows) and returns the ``delta`` objects for what is new: ``{"content": piece}`` for
text, ``{"tool_calls": [{"index", "id", "type": "function", "function": {"name", "arguments"}}]}``
once per call when its name is complete, then ``{"tool_calls": [{"index", "function":
{"arguments": piece}}]}``. The concatenated pieces equal the non-streamed reply of the same text
(``parse.tool_calls``), ids included. Re-parsing costs O(answer length) per token: answers are
bounded by ``max_tokens``.
"""

from __future__ import annotations

from typing import Any

from deployments.ingress.tools.parse import ParsedTurn, call_id, parse_turn
from deployments.ingress.tools.schema import ToolChoice


class ToolDeltaStream:
    def __init__(self, choice: ToolChoice, seed: str):
        self.choice, self.seed = choice, seed
        self.content_sent = 0
        self.arguments_sent: list[int] = []  # per call whose header went out
        self.turn = ParsedTurn()

    def feed(self, text: str, final: bool = False) -> list[dict[str, Any]]:
        """The new deltas once the answer reads ``text`` (``final``: the answer is complete)."""
        self.turn = parse_turn(text, self.choice, final)
        deltas: list[dict[str, Any]] = []
        if self.turn.content is not None and len(self.turn.content) > self.content_sent:
            deltas.append({"content": self.turn.content[self.content_sent:]})
            self.content_sent = len(self.turn.content)
        for k, call in enumerate(self.turn.calls):
            if call.name is None:
                break
            if k == len(self.arguments_sent):
                deltas.append({"tool_calls": [{"index": k, "id": call_id(self.seed, k), "type": "function",
                                               "function": {"name": call.name, "arguments": call.arguments}}]})
                self.arguments_sent.append(len(call.arguments))
            elif len(call.arguments) > self.arguments_sent[k]:
                deltas.append({"tool_calls": [{"index": k, "function": {
                    "arguments": call.arguments[self.arguments_sent[k]:]}}]})
                self.arguments_sent[k] = len(call.arguments)
        return deltas
