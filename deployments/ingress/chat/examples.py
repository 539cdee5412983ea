"""Request examples in the OpenAPI document: what a client (or an SDK generator, or the fuzzer's
examples phase) sees as a valid body. They use the embedded default model's name; a server that
serves another model answers them 404 ``model_not_found``, which is still a valid reply."""

from typing import Any

from deployments.engine.model_loader import EMBEDDED_MODEL_ID

_USER = [{"role": "user", "content": "What is the secret code of the vault?"}]

CHAT: dict[str, Any] = {
    "plain": {"summary": "a plain request", "value": {"model": EMBEDDED_MODEL_ID, "messages": _USER,
                                                       "max_tokens": 4, "temperature": 0}},
    "session": {"summary": "a question on a loaded session", "value": {
        "model": EMBEDDED_MODEL_ID, "messages": _USER, "session_id": "sess_0123456789abcdef", "max_tokens": 4}},
    "sampled": {"summary": "sampling, two choices, logprobs, a stop string", "value": {
        "model": EMBEDDED_MODEL_ID, "messages": _USER, "max_tokens": 4, "temperature": 0.7, "top_p": 0.9,
        "seed": 7, "n": 2, "logprobs": True, "top_logprobs": 2, "stop": ["\n\n"]}},
    "tools": {"summary": "a tool call (docs/tools.md)", "value": {
        "model": EMBEDDED_MODEL_ID, "messages": [{"role": "user", "content": "Weather in Lisbon?"}], "max_tokens": 32,
        "temperature": 0, "tool_choice": "required", "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather of a city", "parameters": {
                "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
                "additionalProperties": False}}}]}},
    "streamed": {"summary": "streaming with usage", "value": {
        "model": EMBEDDED_MODEL_ID, "messages": _USER, "max_tokens": 4, "stream": True,
        "stream_options": {"include_usage": True}}},
}
