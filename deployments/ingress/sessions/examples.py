"""Request examples of ``POST /v1/sessions`` in the OpenAPI document (see chat/examples.py)."""

from typing import Any

from deployments.engine.model_loader import EMBEDDED_MODEL_ID

_CONTEXT = "The secret code of the vault is 7341. Alice was born in Lisbon."

SESSION: dict[str, Any] = {
    "context": {"summary": "load a text context", "value": {
        "model": EMBEDDED_MODEL_ID, "context": _CONTEXT, "press": {"name": "knorm", "compression_ratio": 0.5}}},
    "documents": {"summary": "load documents, return at once (202)", "value": {
        "model": EMBEDDED_MODEL_ID, "documents": [_CONTEXT, "The meeting is on Thursday."], "wait": False}},
    "messages": {"summary": "load a chat history, stream progress", "value": {
        "model": EMBEDDED_MODEL_ID, "messages": [{"role": "user", "content": _CONTEXT}], "stream": True,
        "press": {"name": "adakv", "compression_ratio": 0.5, "presses": [{"name": "knorm"}]}}},
}
