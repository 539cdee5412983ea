"""vLLM's tokenizer routes, mixed into the Ingress class:

| route | body | reply |
|---|---|---|
| ``POST /tokenize`` | ``prompt`` (text) or chat ``messages`` (with ``tools``); ``add_special_tokens``, ``add_generation_prompt``, ``continue_final_message``, ``chat_template_kwargs``, ``return_token_strs`` | ``{count, max_model_len, tokens, token_strs}`` |
| ``POST /detokenize`` | ``tokens`` | ``{prompt}`` |
| ``GET /version`` | | ``{version}`` (kvfleet's) |

The ingress's own copy of the served tokenizer answers (no replica is involved): the ids are those
a replica reads for the same prompt (a completion prompt with the same ``add_special_tokens``; a
chat prompt, tools and tool-call history included, rendered as a plain ``/v1/chat/completions``
request renders it). Bounded before any work under the
same limits as generation: a prompt's characters and ``messages`` (413 / 400 as for a context),
``tokens`` at most ``limits.max_context_tokens + limits.max_tokens_limit`` ids, each inside the
vocabulary (400 naming ``tokens[i]``). ``model`` is optional (vLLM's); when given it must be the
served model (404). Keys are checked as for every route (401).

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Header

from deployments.ingress.chat_template import render_chat
from deployments.ingress.errors import ERRORS, APIError
from deployments.ingress.fastapi_app import api
from deployments.ingress.guards.limits import LimitExceeded, check_vocabulary
from deployments.ingress.tools import ToolError, plan_tools
from deployments.ingress.tokenizer.replies import DetokenizeResponse, TokenizeResponse, Version
from deployments.ingress.tokenizer.schema import DetokenizeRequest, TokenizeRequest


def kvfleet_version() -> str:
    try:
        return version("kvfleet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class TokenizerRoutes:
    """Needs ``self.auth``, ``self.config``, ``self.limits``, ``self.context_limit`` and
    ``self._check_model`` from the Ingress."""

    auth: Any
    config: Any

    @api.post("/tokenize", responses={200: {"model": TokenizeResponse}, **ERRORS})
    async def tokenize(self, body: TokenizeRequest, authorization: str | None = Header(None),
                       x_api_key: str | None = Header(None)) -> dict:
        self.auth.owner(authorization, x_api_key)
        if body.model is not None:
            self._check_model(body.model)
        self.limits.check_messages(body.messages)
        self.limits.check_tools(body.tools)
        self.context_limit.check_chars(body.prompt if body.prompt is not None else body.messages)  # 413
        tokens = await asyncio.to_thread(self._tokenize, body)
        tokenizer = self.context_limit.renderer.tokenizer
        return TokenizeResponse(count=len(tokens), max_model_len=self.config.limits.max_context_tokens, tokens=tokens,
                                token_strs=tokenizer.convert_ids_to_tokens(tokens) if body.return_token_strs else None
                                ).model_dump()

    def _tokenize(self, body: TokenizeRequest) -> list[int]:
        renderer = self.context_limit.renderer
        text = body.prompt
        if text is None:
            try:  # tools and tool-call history, rendered as the chat route renders them
                messages = plan_tools(body.tools, None, None, body.messages).prompt_messages(body.messages, "system")
            except ToolError as exc:
                raise APIError(400, exc.message, exc.code, param=exc.param) from exc
            text = render_chat(renderer, messages, body.add_generation_prompt, body.continue_final_message,
                               body.chat_template_kwargs)
        return list(renderer.tokenizer.encode(text, add_special_tokens=body.special_tokens()))

    @api.post("/detokenize", responses={200: {"model": DetokenizeResponse}, **ERRORS})
    async def detokenize(self, body: DetokenizeRequest, authorization: str | None = Header(None),
                         x_api_key: str | None = Header(None)) -> dict:
        self.auth.owner(authorization, x_api_key)
        if body.model is not None:
            self._check_model(body.model)
        self.check_token_ids(body.tokens, "tokens")
        text = await asyncio.to_thread(self.context_limit.renderer.tokenizer.decode, body.tokens)
        return {"prompt": text}

    def check_token_ids(self, tokens: list[int], field: str) -> None:
        """At most ``max_context_tokens + max_tokens_limit`` ids, each in the vocabulary; else 400."""
        limit = self.config.limits.max_context_tokens + self.config.limits.max_tokens_limit
        if len(tokens) > limit:
            raise LimitExceeded(field, len(tokens), limit, "max_context_tokens + limits.max_tokens_limit")
        check_vocabulary(tokens, self.vocab_size, field)

    @api.get("/version", responses={200: {"model": Version}})
    async def server_version(self) -> dict:
        return {"version": kvfleet_version()}
