"""Ingress: the only HTTP entry - OpenAI API, sessions API, admin API, metrics, health.

Every route turns any failure into OpenAI error JSON (deployments.errors); nothing raises past
here, so the server stays up and never shows a stack trace. Streaming replies are server-sent
events; when the client disconnects, the replica's stream is cancelled.

(No ``from __future__ import annotations`` here: Serve's class-based views re-create the route
functions, and FastAPI must see real types such as ``Request``, not strings.)
"""


import asyncio
import logging
import time
from typing import Annotated, Any, AsyncIterator

from fastapi import Body, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from ray import serve
from ray.serve.exceptions import RayServeException

from deployments.auth import Authenticator
from deployments.config import AppConfig
from deployments.context_limit import ContextLimit
from deployments.detached import DetachedTasks
from deployments.press_outcome import press_outcome
from deployments.engine.presses import describe_presses, resolve
from deployments.engine.sampling import SamplingParams
from deployments.admin_routes import AdminRoutes
from deployments.admin_schema import ERRORS
from deployments.api_examples import CHAT, SESSION
from deployments.api_replies import ChatCompletion, Health, ModelList, PressList, Session, SessionDeleted, SessionList
from deployments.body_limit import BodyLimitMiddleware
from deployments.engine.presses import install_press_policy
from deployments.limits import RequestLimits
from deployments.errors import APIError, error_body, to_api_error
from deployments.generation_controls import request_controls
from deployments.http_app import api
from deployments.metrics import IngressMetrics, RequestMetricsMiddleware
from deployments.openai_format import SSE_DONE, ChoiceAccumulator, chunk, completion_body, completion_id, sse, usage
from deployments.openai_schema import ChatCompletionRequest, SessionCreateRequest
from deployments.plain_routing import PlainRouter
from deployments.prefix_scope import prefix_scope
from deployments.session_routes import SessionRoutes

log = logging.getLogger(__name__)
@serve.ingress(api)
class Ingress(AdminRoutes, SessionRoutes):  # GET /v1/sessions and PATCH live in session_routes.py
    def __init__(self, config: dict, control: Any, replicas: dict[str, Any]):
        self.config = AppConfig.model_validate(config)
        self.control = control
        self.replicas = replicas
        self.auth = Authenticator(self.config.security)
        self.metrics = IngressMetrics()
        RequestMetricsMiddleware.metrics = self.metrics  # counts every request (http_app.py)
        self.model_name = self.config.model.name
        self.context_limit = ContextLimit(self.config.model, self.config.limits.max_context_tokens)
        self.vocab_size = len(self.context_limit.renderer.tokenizer)  # logit_bias ids are checked against it
        self.loads = DetachedTasks()  # session loads that outlive their request
        self.limits = RequestLimits(self.config.limits)
        BodyLimitMiddleware.max_body_bytes = self.config.limits.max_body_bytes
        install_press_policy(self.config.presses)  # allowlisted custom presses, imported now or never
        self.router = PlainRouter(self.config.plain, list(self.replicas), self.model_name)  # plain_routing.py

    # ---- helpers -----------------------------------------------------------------------------
    def _check_model(self, model: str) -> None:
        if model != self.model_name:
            raise APIError(404, f"model {model!r} is not served here; available: {self.model_name!r}",
                           "model_not_found", param="model")

    def _sampling(self, req: ChatCompletionRequest, choice: int) -> dict:
        limits = self.config.limits
        max_tokens = req.max_completion_tokens or req.max_tokens or limits.max_tokens_default
        if max_tokens > limits.max_tokens_limit:
            raise APIError(400, f"max_tokens {max_tokens} exceeds this server's limit {limits.max_tokens_limit}",
                           "max_tokens_too_large")
        seed = None if req.seed is None else req.seed + choice
        temperature = 1.0 if req.temperature is None else req.temperature
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=req.top_p or 1.0, seed=seed,
                              stop=req.stop_list(), logprobs=req.logprobs, top_logprobs=req.top_logprobs or 0,
                              ignore_eos=req.ignore_eos,
                              **request_controls(req, self.vocab_size)).model_dump(mode="json")

    @api.get("/health", responses={200: {"model": Health}})
    async def health(self) -> dict:
        return {"status": "ok", "model": self.model_name, "replicas": list(self.replicas)}

    @api.get("/v1/presses", responses={200: {"model": PressList}})
    async def presses(self) -> dict:
        return {"object": "list", "data": describe_presses(), "default": self.config.default_press.model_dump()}

    # ---- OpenAI API --------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {"id": self.model_name, "object": "model", "created": 0, "owned_by": "kvfleet",
                "max_model_len": self.config.limits.max_context_tokens}

    @api.get("/v1/models", responses={200: {"model": ModelList}})
    async def models(self) -> dict:
        return {"object": "list", "data": [self._model_card()]}

    @api.get("/v1/models/{model:path}")
    async def model(self, model: str) -> dict:
        """OpenAI ``models.retrieve``: the card of a served model; 404 for any other id."""
        self._check_model(model)
        return self._model_card()

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
        if req.n > self.config.limits.max_n:
            raise APIError(400, f"n={req.n} exceeds this server's limit {self.config.limits.max_n}", "n_too_large")
        self.limits.check_chat(req)
        session_id = req.session_id or x_session_id
        if session_id and req.press is not None:
            raise APIError(400, "press applies to plain requests only; a session keeps the press it was loaded with",
                           "invalid_request")
        if req.press is not None:
            resolve(req.press)
        press = req.press.model_dump(mode="json") if req.press else None
        scope = prefix_scope(owner, req.cache_salt, self.config.plain.share_prefixes_across_owners)
        cached_tokens = 0
        if session_id:
            where = await self.control.locate.remote(session_id, owner)
            name, cached_tokens = where["replica"], where["read_tokens"]
        else:
            await asyncio.to_thread(self.context_limit.check, req.messages)  # the whole prompt is context here
            name = self.router.pick(req.messages, press, scope).replica_id
        samplings = [self._sampling(req, i) for i in range(req.n)]
        streams = [self.replicas[name].options(stream=True).chat.remote(session_id, req.messages, s, press, scope)
                   for s in samplings]
        kind = "session" if session_id else "plain"
        self.router.started(name)
        streaming = False
        try:
            if req.stream:
                first = [await self._first(s) for s in streams]  # errors before streaming become HTTP errors
                self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
                streaming = True
                return StreamingResponse(self._sse(req, streams, first, cached_tokens, kind, request, session_id,
                                                   lambda: self.router.finished(name)), media_type="text/event-stream")
            return await self._collect(req, streams, cached_tokens, kind, session_id, arrived)
        finally:
            if not streaming:
                self.router.finished(name)

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
                       session_id: str | None, arrived: float) -> dict:
        start = time.perf_counter()
        choices = [ChoiceAccumulator(i) for i in range(len(streams))]

        async def drain(i: int) -> None:
            async for item in streams[i]:
                if not choices[i].text and i == 0:
                    self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
                choices[i].add(item)

        try:
            await asyncio.wait_for(asyncio.gather(*(drain(i) for i in range(len(streams)))),
                                   timeout=self.config.limits.request_timeout_s)
        except RayServeException as exc:
            raise to_api_error(exc) from exc  # as in _first
        self._count_tokens(kind, choices, time.perf_counter() - start)
        return completion_body(completion_id(), self.model_name, choices, req.logprobs, cached, session_id)

    def _count_tokens(self, kind: str, choices: list[ChoiceAccumulator], elapsed_s: float) -> None:
        produced = sum(c.completion_tokens for c in choices)
        self.metrics.tokens.labels(kind).inc(produced)
        self.metrics.prompt_tokens.labels(kind).inc(choices[0].prompt_tokens)
        if elapsed_s > 0 and produced:
            self.metrics.tokens_per_s.observe(produced / elapsed_s)

    async def _sse(self, req: ChatCompletionRequest, streams: list, first: list[dict], cached: int, kind: str,
                   request: Request, session_id: str | None, done: Any = None) -> AsyncIterator[str]:
        cid, created, start = completion_id(), int(time.time()), time.perf_counter()
        choices = [ChoiceAccumulator(i) for i in range(len(streams))]
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        try:
            for i in range(len(streams)):
                yield sse(chunk(cid, self.model_name, created, {"role": "assistant", "content": ""}, i))
            for i, stream in enumerate(streams):
                pending = [first[i]]
                while True:
                    for item in pending:
                        choices[i].add(item)
                        logprobs = {"content": choices[i].logprobs[-1:]} if "logprob" in item else None
                        if item["text"] or logprobs:
                            yield sse(chunk(cid, self.model_name, created, {"content": item["text"]}, i,
                                            logprobs=logprobs))
                        if item["finish_reason"]:
                            yield sse(chunk(cid, self.model_name, created, {}, i, choices[i].finish_reason))
                    if choices[i].finish_reason or await request.is_disconnected():
                        break
                    try:
                        pending = [await asyncio.wait_for(stream.__anext__(), self.config.limits.request_timeout_s)]
                    except StopAsyncIteration:
                        break
            if include_usage:
                yield sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": self.model_name, "choices": [], "usage": usage(choices, cached)})
            yield SSE_DONE
            self._count_tokens(kind, choices, time.perf_counter() - start)
        except Exception as exc:  # mid-stream failure: report it in-band, then end the stream
            yield sse(error_body(to_api_error(exc)))
            yield SSE_DONE
        finally:
            for stream in streams:
                stream.cancel()
            if done is not None:
                done()

    # ---- sessions API ------------------------------------------------------------------------
    @api.post("/v1/sessions", responses={200: {"model": Session}, 202: {"model": Session}, **ERRORS})
    async def create_session(self, body: Annotated[SessionCreateRequest, Body(openapi_examples=SESSION)],
                             authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> Any:
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        self._check_model(req.model)
        self.limits.check_session(req)
        press = req.press or self.config.default_press
        resolve(press)  # 422 before anything is placed
        await asyncio.to_thread(self.context_limit.check, req.context_value())  # 413 likewise
        # Open + load run detached from this request (deployments.detached): a client that hangs
        # up never leaves the session LOADING; it completes or ends failed (issue 14).
        opened_future = asyncio.get_running_loop().create_future()
        load = self.loads.start(self._open_and_load(owner, req, press.model_dump(mode="json"), opened_future),
                                name="session-load")
        opened = await asyncio.shield(opened_future)
        session_id, replica_id = opened["session"]["id"], opened["replica"]
        if req.stream:
            return StreamingResponse(self._load_events(session_id, replica_id, load), media_type="text/event-stream")
        if not req.wait:
            return JSONResponse(self._session_view(opened["session"]), status_code=202)
        return await asyncio.shield(load)

    async def _open_and_load(self, owner: str, req: SessionCreateRequest, press: dict,
                             opened_future: asyncio.Future) -> dict:
        try:
            opened = await self.control.open_session.remote(
                owner=owner, model=req.model, context=req.context_value(), press=press, ttl_s=req.ttl_s,
                pinned=req.pinned)
        except BaseException as exc:
            opened_future.set_exception(exc)
            raise
        opened_future.set_result(opened)
        return await self._load(opened["session"]["id"], opened["replica"], req.context_value(), press, req.pinned)

    async def _load(self, session_id: str, replica_id: str, context: Any, press: dict, pinned: bool) -> dict:
        start = time.perf_counter()
        try:
            stored = await asyncio.wait_for(
                self.replicas[replica_id].load_session.remote(session_id, context, press, pinned),
                timeout=self.config.limits.load_timeout_s)
        except BaseException as exc:
            await self.control.mark_load_failed.remote(session_id, to_api_error(exc).message)
            if isinstance(exc, RayServeException):
                raise to_api_error(exc) from exc  # as in _first
            raise
        record = await self.control.mark_loaded.remote(session_id, stored)
        self.metrics.sessions_loaded.inc()
        self.metrics.context_tokens.inc(stored["read_tokens"])
        view = self._session_view(record)
        view["press_stats"] = stored.get("press_stats") or None  # what the press did on this load (moe_router)
        view["timings"] = {"load_s": round(time.perf_counter() - start, 4), "prefill_store_s": round(stored["load_s"], 4)}
        return view

    async def _load_events(self, session_id: str, replica_id: str, load: Any) -> AsyncIterator[str]:
        yield sse({"event": "placed", "session_id": session_id, "replica": replica_id})
        yield sse({"event": "prefill_started", "session_id": session_id})
        try:
            view = await asyncio.shield(load)  # a client that hangs up does not cancel the load
            yield sse({"event": "ready", **view})
        except Exception as exc:
            yield sse({"event": "failed", **error_body(to_api_error(exc))})
        yield SSE_DONE

    @staticmethod
    def _session_view(record: dict) -> dict:
        return {"id": record["id"], "object": "session", "model": record["model"], "state": record["state"].lower()
                if isinstance(record["state"], str) else record["state"], "replica": record.get("replica"),
                "press": record["press"], "tokens_read": record["read_tokens"], "tokens_kept": record["kept_tokens"],
                "bytes_stored": record["stored_bytes"], "codec": record["codec"], "pinned": record["pinned"],
                "created": record["created_s"], "last_used": record["last_used_s"], "ttl_s": record["ttl_s"],
                "expire_time": None if record["ttl_s"] is None or record["pinned"]
                else record["last_used_s"] + record["ttl_s"], "failure": record.get("failure"),
                "compression": press_outcome(record["press"], record["read_tokens"], record["kept_tokens"])}

    @api.get("/v1/sessions/{session_id}", responses={200: {"model": Session}, **ERRORS})
    async def get_session(self, session_id: str, authorization: str | None = Header(None),
                          x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        return self._session_view(await self.control.session.remote(session_id, owner))

    @api.delete("/v1/sessions/{session_id}", responses={200: {"model": SessionDeleted}, **ERRORS})
    async def delete_session(self, session_id: str, authorization: str | None = Header(None),
                             x_api_key: str | None = Header(None)) -> dict:
        owner = self.auth.owner(authorization, x_api_key)
        record = await self.control.delete_session.remote(session_id, owner)
        return {"id": record["id"], "object": "session", "deleted": True}

    # ---- observability -----------------------------------------------------------------------
    @api.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(self) -> str:
        results = await asyncio.gather(*(asyncio.wait_for(h.stats.remote(), 10) for h in self.replicas.values()),
                                       return_exceptions=True)
        for name, stats in zip(self.replicas, results):
            if isinstance(stats, dict):
                self.metrics.update_replica(name, stats)
        cluster = await self.control.cluster.remote()
        self.metrics.update_control(cluster["counters"] | self.router.counters())
        return self.metrics.render().decode()
