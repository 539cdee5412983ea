"""The OpenAI Responses API (``/v1/responses``): routes, request schema, input items, replies,
stream events and the conversation state kept as a stored KV cache (see docs/responses.md)."""
