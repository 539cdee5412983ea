"""Responses API reply objects: the ``Response`` (openai-python ``types/responses/response.py``),
its output items and usage, the deletion reply and the input-items list - one model per object,
used to document the routes (OpenAPI) and to build the replies.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import time
import uuid
from typing import Any

from deployments.common.schema_base import OpenModel
from deployments.ingress.responses.schema import ResponseCreateRequest


class InputTokensDetails(OpenModel):
    cached_tokens: int = 0


class OutputTokensDetails(OpenModel):
    reasoning_tokens: int = 0


class ResponseUsage(OpenModel):
    """``input_tokens``: every token of the conversation the answer was conditioned on;
    ``cached_tokens``: those read from the stored cache (the previous response's or session's),
    so ``input_tokens - cached_tokens`` were prefilled for this turn."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class Response(OpenModel):
    id: str
    object: str = "response"
    created_at: int
    status: str
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[dict[str, Any]]
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] = {"effort": None, "summary": None}
    store: bool = True
    temperature: float = 1.0
    text: dict[str, Any] = {"format": {"type": "text"}}
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = []
    top_p: float = 1.0
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = {}


class ResponseDeleted(OpenModel):
    id: str
    object: str = "response"
    deleted: bool = True


class InputItemList(OpenModel):
    object: str = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


def response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def skeleton(rid: str, req: ResponseCreateRequest, model: str) -> dict[str, Any]:
    """The ``in_progress`` Response of ``req`` (no output, no usage yet), as the first events carry it."""
    text = {"format": req.text.format} if req.text is not None and req.text.format is not None else {"format": {"type": "text"}}
    return Response(
        id=rid, created_at=int(time.time()), status="in_progress", instructions=req.instructions,
        max_output_tokens=req.max_output_tokens, model=model, output=[],
        parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        previous_response_id=req.previous_response_id, store=req.stores,
        temperature=1.0 if req.temperature is None else req.temperature, text=text,
        tool_choice=req.tool_choice if req.tool_choice is not None else "auto", tools=req.tools or [],
        top_p=1.0 if req.top_p is None else req.top_p, truncation=req.truncation or "disabled",
        user=req.user, metadata=req.metadata or {},
    ).model_dump()


def usage(input_tokens: int, cached_tokens: int, output_tokens: int) -> dict[str, Any]:
    return ResponseUsage(input_tokens=input_tokens, input_tokens_details=InputTokensDetails(cached_tokens=cached_tokens),
                         output_tokens=output_tokens, output_tokens_details=OutputTokensDetails(),
                         total_tokens=input_tokens + output_tokens).model_dump()


def message_item(item_id: str, text: str, status: str, logprobs: list | None = None) -> dict[str, Any]:
    """An assistant ``message`` output item with one ``output_text`` part."""
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    if logprobs is not None:
        part["logprobs"] = logprobs
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": [part]}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def input_items_page(items: list[dict[str, Any]], *, limit: int, order: str, after: str | None,
                     before: str | None) -> dict[str, Any]:
    """OpenAI's list shape over ``items`` (kept in input order): ``order`` asc|desc, then the items
    after ``after`` / before ``before`` (ids) in that order, at most ``limit``. An unknown cursor id
    is a ValueError (400)."""
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    start, stop = 0, len(ordered)
    if after is not None:
        if after not in ids:
            raise ValueError(f"after: no input item {after!r} in this response")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise ValueError(f"before: no input item {before!r} in this response")
        stop = ids.index(before)
    window = ordered[start:stop]
    page = window[:limit]
    return InputItemList(data=page, first_id=page[0]["id"] if page else None,
                         last_id=page[-1]["id"] if page else None, has_more=len(window) > limit).model_dump()
