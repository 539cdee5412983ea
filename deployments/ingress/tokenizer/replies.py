"""Replies of the tokenizer routes, as vLLM answers them (``TokenizeResponse``, ``DetokenizeResponse``,
``GET /version``). (No ``from __future__ import annotations``: FastAPI must see real types.)"""

from deployments.common.schema_base import OpenModel


class TokenizeResponse(OpenModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(OpenModel):
    prompt: str


class Version(OpenModel):
    version: str
