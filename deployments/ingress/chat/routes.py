"""OpenAI Chat Completions route (``POST /v1/chat/completions``), mixed into the Ingress class.

A question on a stored session (``session_id`` in the body, ``extra_body`` or the
``X-Session-Id`` header) goes to the replica that holds it; a plain request goes to the replica
the plain router picks (longest stored compressed prefix). ``n`` choices are ``n`` streams of
the replica's token dicts; replies are built by chat/replies.py. Tools (deployments/ingress/tools)
are planned before any work: the prompt carries the rendered tools and history, the sampling the
tool_choice's grammar, and answers are read back as tool calls. Streaming replies are the
server-sent events of chat/stream.py. Errors before the first token are HTTP errors. vLLM's
template options (``add_generation_prompt``, ``continue_final_message``, ``chat_template_kwargs``) make the ingress render a plain request's prompt itself
(deployments/ingress/chat_template.py) and send it as token ids to ``Replica.complete``; ``echo``
prepends the final assistant message.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
import hashlib
import json
import logging
import time
from typing import Annotated, Any

from fastapi import Body, Header, Request
from fastapi.responses import StreamingResponse
from ray.serve.exceptions import RayServeException

from deployments.common.prefix_scope import prefix_scope
from deployments.engine.engine import ContextTooLongError
from deployments.engine.presses import resolve
from deployments.engine.prompt import normalize_messages
from deployments.engine.sampling import SamplingParams
from deployments.ingress.chat.controls import request_controls
from deployments.ingress.chat.examples import CHAT
from deployments.ingress.chat.replies import ChatCompletion, ChoiceAccumulator, completion_body, completion_id
from deployments.ingress.chat.schema import ChatCompletionRequest
from deployments.ingress.chat.stream import StreamSetup, ToolCalls, chat_events
from deployments.ingress.chat_template import check_template_options, render_chat
from deployments.ingress.errors import ERRORS, APIError, to_api_error
from deployments.ingress.failover import CACHE_GONE, first_items, start_with_failover
from deployments.ingress.fastapi_app import api
from deployments.ingress.tools import ToolError, ToolPlan, plan_tools


log = logging.getLogger(__name__)


class ChatRoutes:
    """Needs ``self.auth``, ``self.control``, ``self.replicas``, ``self.config``, ``self.limits``,
    ``self.context_limit``, ``self.router``, ``self.metrics``, ``self.vocab_size``, ``self.model_name``
    and ``self._check_model`` from the Ingress."""

    auth: Any
    control: Any
    replicas: dict[str, Any]

    def _sampling(self, req: ChatCompletionRequest, choice: int, tools: ToolPlan) -> dict:
        max_tokens = req.max_completion_tokens or req.max_tokens or self.config.limits.max_tokens_default
        seed = None if req.seed is None else req.seed + choice
        temperature = 1.0 if req.temperature is None else req.temperature
        controls = request_controls(req, self.vocab_size)
        if tools.guided is not None:  # the tool_choice's constraint (deployments/ingress/tools/grammar.py)
            if "guided" in controls:
                raise APIError(400, f"tool_choice {tools.choice.mode!r} constrains the answer to tool calls; it cannot "
                               "be combined with response_format or another structured output (use tool_choice "
                               "'none')", "invalid_request", param="tool_choice")
            if req.ignore_eos:
                raise APIError(400, "ignore_eos cannot be combined with tool calls (the grammar ends the answer)",
                               "invalid_request", param="ignore_eos")
            controls["guided"] = tools.guided.model_dump(mode="json")
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=req.top_p or 1.0, seed=seed,
                              stop=req.stop_list(), logprobs=req.logprobs, top_logprobs=req.top_logprobs or 0,
                              ignore_eos=req.ignore_eos, **controls).model_dump(mode="json")

    @staticmethod
    def _tool_plan(req: ChatCompletionRequest) -> ToolPlan:
        try:
            return plan_tools(req.tools, req.tool_choice, req.parallel_tool_calls, req.messages)
        except ToolError as exc:
            raise APIError(400, exc.message, exc.code, param=exc.param) from exc

    @staticmethod
    def _call_seed(req: ChatCompletionRequest, session_id: str | None) -> str:
        """Per request: the same request, streamed or not, gets the same tool call ids."""
        body = req.model_dump(mode="json", exclude={"stream", "stream_options"})
        return hashlib.sha256(json.dumps([body, session_id], sort_keys=True).encode()).hexdigest()

    @api.post("/v1/chat/completions", responses={200: {"model": ChatCompletion}, **ERRORS})
    async def chat_completions(self, request: Request,
                               body: Annotated[ChatCompletionRequest, Body(openapi_examples=CHAT)],
                               authorization: str | None = Header(None),
                               x_session_id: str | None = Header(None), x_api_key: str | None = Header(None)) -> Any:
        arrived = time.perf_counter()  # TTFT counts from here
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        self._check_model(req.model)
        problem = req.unsupported()
        if problem:
            raise APIError(400, problem, "unsupported_parameter")
        self.limits.check_chat(req)
        session_id = req.session_id or x_session_id
        tools = await asyncio.to_thread(self._tool_plan, req)  # after the limits: compiles the tools' schemas
        messages = tools.prompt_messages(req.messages, "first_user" if session_id else "system")
        if req.echo and tools.parses:
            raise APIError(400, "echo cannot be combined with tool calls (the reply is read back as calls)",
                           "invalid_request", param="echo")
        if session_id and req.press is not None:
            raise APIError(400, "press applies to plain requests only; a session keeps the press it was loaded with",
                           "invalid_request")
        if req.press is not None:
            resolve(req.press)
        press = req.press.model_dump(mode="json") if req.press else None
        scope = prefix_scope(owner, req.cache_salt, self.config.plain.share_prefixes_across_owners)
        prompt_ids = await self._own_prompt_ids(req, messages, session_id)  # vLLM's template options (chat_template.py)
        cached_tokens = 0
        samplings = [self._sampling(req, i, tools) for i in range(req.n)]
        first = None
        if session_id:
            name, cached_tokens, streams, first = await self._session_streams(session_id, owner, messages, samplings)
        else:
            await asyncio.to_thread(self.context_limit.check, messages)  # the whole prompt is context here
            name, streams, first = await self._plain_streams(messages, press, scope, prompt_ids, samplings)
        calls = ToolCalls(tools.choice if tools.parses else None, self._call_seed(req, session_id))
        kind = "session" if session_id else "plain"
        self.router.started(name)
        streaming = False
        try:
            if req.stream:
                first = first or [await self._first(s) for s in streams]  # errors before streaming: HTTP errors
                self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
                streaming = True
                setup = StreamSetup(self.model_name, self._echo_text(req), self.config.limits.request_timeout_s,
                                    lambda choices, s: self._count_tokens(kind, choices, s),
                                    lambda: self.router.finished(name))
                return StreamingResponse(chat_events(req, streams, first, cached_tokens, request, calls, setup),
                                         media_type="text/event-stream")
            return await self._collect(req, streams, cached_tokens, kind, session_id, arrived, calls, first)
        finally:
            if not streaming:
                self.router.finished(name)

    async def _own_prompt_ids(self, req: ChatCompletionRequest, messages: list[dict[str, Any]],
                              session_id: str | None) -> list[int] | None:
        """The token ids of ``messages`` (the request's, with any tools rendered in) when
        ``add_generation_prompt``, ``continue_final_message`` or ``chat_template_kwargs`` change its
        rendering (None otherwise: the replica renders it).
        400 on a session, whose stored context fixes the rendering; 413 above the context limit."""
        check_template_options(req.messages, req.add_generation_prompt, req.continue_final_message,
                               req.chat_template_kwargs)
        if not req.renders_own_prompt():
            return None
        if session_id:
            raise APIError(400, "add_generation_prompt, continue_final_message and chat_template_kwargs apply to "
                                "plain requests only (a session's stored context fixes the rendering)",
                           "unsupported_parameter", param="add_generation_prompt")
        renderer = self.context_limit.renderer
        text = await asyncio.to_thread(render_chat, renderer, messages, req.add_generation_prompt,
                                       req.continue_final_message, req.chat_template_kwargs)
        ids = await asyncio.to_thread(renderer.encode, text)
        if len(ids) > self.config.limits.max_context_tokens:
            raise ContextTooLongError(f"the prompt has {len(ids)} tokens; this server accepts at most "
                                      f"{self.config.limits.max_context_tokens} (limits.max_context_tokens)")
        return ids

    @staticmethod
    def _echo_text(req: ChatCompletionRequest) -> str:
        """vLLM's chat ``echo``: the last message's content when it is the assistant's (the text the
        reply continues), else nothing."""
        last = req.messages[-1]
        if not req.echo or last.get("role") != "assistant":
            return ""
        return normalize_messages([last])[0]["content"]

    async def _session_streams(self, session_id: str, owner: str, messages: list[dict[str, Any]],
                               samplings: list[dict]) -> tuple[str, int, list, list[dict]]:
        """Locate the session (the control plane waits for it if it is being recovered), open its
        streams and take their first items. If the replica turns out not to hold the cache (its
        decode actor died or restarted before a heartbeat told the control plane), report it - the
        session then recovers first - and try once more (deployments/ingress/failover.py)."""
        where = await self.control.locate.remote(session_id, owner)

        async def start(name: str, moved: bool) -> tuple[list, list[dict]]:
            streams = [self.replicas[name].options(stream=True).chat.remote(session_id, messages, s, None, "", moved)
                       for s in samplings]
            return streams, await first_items(streams, self._first)

        async def move(name: str, exc: BaseException) -> str:
            where.update(await self._session_elsewhere(session_id, owner, name, exc))
            return where["replica"]

        name, (streams, first) = await start_with_failover(where["replica"], start, move, CACHE_GONE)
        return name, where["read_tokens"], streams, first

    async def _plain_streams(self, messages: list[dict[str, Any]], press: dict | None, scope: str,
                             prompt_ids: list[int] | None, samplings: list[dict]) -> tuple[str, list, list[dict]]:
        """Route a plain prompt, open its streams and take their first items. A replica whose model
        actors died before its restart was noticed is left for another, once: nothing was streamed
        yet and a plain prompt has no state there to lose (the router forgets that replica's prefixes)."""
        async def start(name: str, moved: bool) -> tuple[list, list[dict]]:
            replica = self.replicas[name].options(stream=True)
            streams = [replica.complete.remote(None, prompt_ids, s, press, scope, moved) if prompt_ids is not None
                       else replica.chat.remote(None, messages, s, press, scope, moved) for s in samplings]
            return streams, await first_items(streams, self._first)

        async def move(name: str, exc: BaseException) -> str:
            return self._plain_elsewhere(name, exc, lambda tried: self.router.pick(messages, press, scope, exclude=tried))

        first_pick = self.router.pick(messages, press, scope).replica_id
        name, (streams, first) = await start_with_failover(first_pick, start, move)
        return name, streams, first

    async def _session_elsewhere(self, session_id: str, owner: str, name: str, exc: BaseException) -> dict:
        """Where a session is now (``{"replica", "read_tokens"}``) after its replica ``name`` turned
        out not to hold its cache (``exc``): reported, so the session recovers first, then located
        again (the control plane waits for the recovery)."""
        log.warning("session=%s: %s lost its cache (%s); recovering it", session_id, name, type(exc).__name__)
        await self.control.report_missing.remote(session_id, owner, name)
        return await self.control.locate.remote(session_id, owner)

    def _plain_elsewhere(self, name: str, exc: BaseException, pick: Any) -> str:
        """Another replica for a plain request whose replica ``name`` lost its model actors (the
        router forgets ``name``'s prefixes); ``exc`` again when it is the only replica."""
        self.router.lost(name)
        if len(self.replicas) == 1:
            raise exc
        log.warning("%s lost its model actors under a plain request; sending it to another replica", name)
        return pick(frozenset({name})).replica_id

    async def _first(self, stream: Any) -> dict:
        try:
            return await asyncio.wait_for(stream.__anext__(), timeout=self.config.limits.request_timeout_s)
        except RayServeException as exc:
            # BackPressureError (the replica's queue is full: 429) or DeploymentUnavailableError
            # (503): escaping the route, Serve's own handler would answer it in plain text.
            raise to_api_error(exc) from exc
        except StopAsyncIteration:
            raise APIError(500, "the replica returned an empty stream", "internal_error") from None

    async def _collect(self, req: ChatCompletionRequest, streams: list, cached: int, kind: str,
                       session_id: str | None, arrived: float, calls: ToolCalls, first: list[dict] | None = None) -> dict:
        start = time.perf_counter()
        choices = [ChoiceAccumulator(i) for i in range(len(streams))]
        for choice in choices:
            choice.text.append(self._echo_text(req))
        for i, item in enumerate(first or ()):  # items taken already (session requests)
            if i == 0:
                self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
            choices[i].add(item)

        async def drain(i: int) -> None:
            if choices[i].finish_reason:
                return
            async for item in streams[i]:
                if first is None and not choices[i].completion_tokens and i == 0:
                    self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
                choices[i].add(item)

        try:
            await asyncio.wait_for(asyncio.gather(*(drain(i) for i in range(len(streams)))),
                                   timeout=self.config.limits.request_timeout_s)
        except RayServeException as exc:
            raise to_api_error(exc) from exc  # as in _first
        self._count_tokens(kind, choices, time.perf_counter() - start)
        return completion_body(completion_id(), self.model_name, choices, req.logprobs, cached, session_id,
                               calls.choice, calls.seed)

    def _count_tokens(self, kind: str, choices: list[ChoiceAccumulator], elapsed_s: float) -> None:
        produced = sum(c.completion_tokens for c in choices)
        self.metrics.tokens.labels(kind).inc(produced)
        self.metrics.prompt_tokens.labels(kind).inc(choices[0].prompt_tokens)
        if elapsed_s > 0 and produced:
            self.metrics.tokens_per_s.observe(produced / elapsed_s)
