"""OpenAI Chat Completions: ``POST /v1/chat/completions`` - request schema, message validation,
generation controls, reply and stream-chunk building."""
