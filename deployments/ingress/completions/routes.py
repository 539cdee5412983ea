"""OpenAI legacy Completions route (``POST /v1/completions``), mixed into the Ingress class, as
vLLM serves it (request fields: completions/schema.py; replies: completions/replies.py).

Each prompt is tokenized here (the served tokenizer; ``add_special_tokens`` as vLLM, false by
default on a session, whose prompt continues the stored context) and sent as token ids to a
replica's ``complete`` entry - no chat template. Without a session, a prompt's tokens but the last
are its prefix, reused from or stored in the compressed-prefix cache like a plain chat prompt's
(and compressed from ``plain.compression_threshold_tokens`` on); with ``session_id`` (body or
``X-Session-Id``) the prompt is read after the session's stored context. Every prompt gets ``n``
choices, numbered ``prompt_index * n + i``.

``echo`` prepends the prompt; with ``logprobs`` it brings the prompt tokens' own log-probs (the
first null) from one forward over the prompt (``Replica.prompt_logprobs``: uncompressed for a
plain prompt, after the stored context on a session) - the loglikelihood request of evaluation
harnesses (``echo: true, logprobs: 1, max_tokens: 0 or 1``). ``max_tokens: 0`` generates nothing.

Bounded before any work: choices per request (prompts x ``n``: ``limits.max_prompts``), ``n``, ``max_tokens``,
stop strings, ``logprobs``, each prompt's characters and tokens (413 above
``limits.max_context_tokens``) and token ids (inside the vocabulary). Streaming: one chunk per
token piece, the prompt first under ``echo``; the concatenated ``text`` equals the non-streamed
reply's.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

import asyncio
import time
from typing import Annotated, Any, AsyncIterator

from fastapi import Body, Header, Request
from fastapi.responses import StreamingResponse
from ray.serve.exceptions import RayServeException

from deployments.common.prefix_scope import prefix_scope
from deployments.engine.engine import ContextTooLongError
from deployments.engine.presses import resolve
from deployments.engine.sampling import SamplingParams
from deployments.ingress.chat.controls import request_controls
from deployments.ingress.completions.jobs import CompletionJobs, PromptJob
from deployments.ingress.completions.replies import Completion, TextChoice, chunk, completion_body, completion_id, usage
from deployments.ingress.completions.schema import CompletionRequest
from deployments.ingress.errors import ERRORS, APIError, error_body, to_api_error
from deployments.ingress.failover import cancel_all
from deployments.ingress.fastapi_app import api
from deployments.ingress.sse import SSE_DONE, sse

COMPLETION_EXAMPLES = {
    "plain": {"summary": "a text prompt", "value": {"model": "embedded:smollm2-135m-instruct",
                                                    "prompt": "The capital of France is", "max_tokens": 8}},
    "loglikelihood": {"summary": "lm-evaluation-harness loglikelihood", "value": {
        "model": "embedded:smollm2-135m-instruct", "prompt": "The capital of France is Paris",
        "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}},
}


class CompletionRoutes(CompletionJobs):
    """Needs ``self.auth``, ``self.control``, ``self.replicas``, ``self.config``, ``self.limits``,
    ``self.context_limit``, ``self.router``, ``self.metrics``, ``self.vocab_size``, ``self.model_name``,
    ``self._check_model``, ``self.check_token_ids`` (tokenizer routes) and ``self._first`` /
    ``self._plain_elsewhere`` (chat routes) from the Ingress."""

    auth: Any
    control: Any
    replicas: dict[str, Any]

    @api.post("/v1/completions", responses={200: {"model": Completion}, **ERRORS})
    async def completions(self, request: Request,
                          body: Annotated[CompletionRequest, Body(openapi_examples=COMPLETION_EXAMPLES)],
                          authorization: str | None = Header(None),
                          x_session_id: str | None = Header(None), x_api_key: str | None = Header(None)) -> Any:
        arrived = time.perf_counter()
        owner = self.auth.owner(authorization, x_api_key)
        req = body
        self._check_model(req.model)
        self._check_completion_limits(req)
        session_id = req.session_id or x_session_id
        if session_id and req.press is not None:
            raise APIError(400, "press applies to plain requests only; a session keeps the press it was loaded with",
                           "invalid_request", param="press")
        if req.press is not None:
            resolve(req.press)
        sampling = self._completion_sampling(req)  # 400s for bad controls before any work
        jobs = await asyncio.to_thread(self._prompt_jobs, req, session_id is not None)
        press = req.press.model_dump(mode="json") if req.press else None
        scope = prefix_scope(owner, req.cache_salt, self.config.plain.share_prefixes_across_owners)
        session_tokens = 0
        if session_id:
            where = await self.control.locate.remote(session_id, owner)
            session_tokens = where["read_tokens"]
            for job in jobs:
                job.replica = where["replica"]
        else:
            for job in jobs:
                job.replica = self.router.pick([{"role": "user", "content": job.text}], press, scope).replica_id
        for job in jobs:
            self.router.started(job.replica)
        kind = "session" if session_id else "plain"
        handed_over = False
        try:
            prompt_logprobs, streams, first = await self._start_jobs(req, jobs, sampling, session_id, owner, press, scope)
            choices = [TextChoice(job.index * req.n + i, req.logprobs is not None)
                       for job in jobs for i in range(req.n)]
            total_prompt = sum(len(job.ids) + session_tokens for job in jobs)
            if req.stream:  # errors before the first items were HTTP errors
                self.metrics.ttft.labels(kind).observe(time.perf_counter() - arrived)
                handed_over = True
                return StreamingResponse(
                    self._completion_sse(req, jobs, choices, prompt_logprobs, streams, first, total_prompt,
                                         session_tokens, request, lambda: self._release(jobs)),
                    media_type="text/event-stream")
            await self._drain(req, jobs, choices, prompt_logprobs, streams, first)
            produced = sum(c.completion_tokens for c in choices)
            self.metrics.tokens.labels(kind).inc(produced)
            self.metrics.prompt_tokens.labels(kind).inc(total_prompt)
            cached = len(jobs) * session_tokens + sum(c.cached_tokens for c in choices[::req.n])
            return completion_body(completion_id(), self.model_name, choices,
                                   usage(total_prompt, choices, cached), session_id)
        finally:
            if not handed_over:
                self._release(jobs)

    # ---- checks and inputs -------------------------------------------------------------------
    def _check_completion_limits(self, req: CompletionRequest) -> None:
        self.limits.check_completion(req)
        prompts = req.prompts()
        for i, prompt in enumerate(prompts):
            field = "prompt" if len(prompts) == 1 else f"prompt[{i}]"
            if isinstance(prompt, str):
                self.context_limit.check_chars(prompt)
            else:
                self.check_token_ids(prompt, field)
                if len(prompt) > self.config.limits.max_context_tokens:
                    raise ContextTooLongError(f"{field} has {len(prompt)} tokens; this server accepts at most "
                                              f"{self.config.limits.max_context_tokens} (limits.max_context_tokens)")

    def _completion_sampling(self, req: CompletionRequest) -> SamplingParams:
        max_tokens = self.config.limits.max_tokens_default if req.max_tokens is None else req.max_tokens
        return SamplingParams(max_tokens=max(max_tokens, 1), temperature=1.0 if req.temperature is None else req.temperature,
                              top_p=req.top_p or 1.0, seed=req.seed, stop=req.stop_list(),
                              logprobs=req.logprobs is not None, top_logprobs=req.logprobs or 0,
                              ignore_eos=req.ignore_eos, **request_controls(req, self.vocab_size))

    def _prompt_jobs(self, req: CompletionRequest, on_session: bool) -> list[PromptJob]:
        """Tokenize (text) or detokenize (ids, for ``echo`` and routing) each prompt; 413 when long."""
        tokenizer = self.context_limit.renderer.tokenizer
        special = req.add_special_tokens if ("add_special_tokens" in req.model_fields_set or not on_session) else False
        jobs = []
        for i, prompt in enumerate(req.prompts()):
            if isinstance(prompt, str):
                ids = list(tokenizer.encode(prompt, add_special_tokens=special))
                if len(ids) > self.config.limits.max_context_tokens:
                    raise ContextTooLongError(f"prompt has {len(ids)} tokens; this server accepts at most "
                                              f"{self.config.limits.max_context_tokens} (limits.max_context_tokens)")
                jobs.append(PromptJob(i, prompt, ids))
            else:
                jobs.append(PromptJob(i, tokenizer.decode(prompt), list(prompt)))
        fewest = 1 if on_session else 2  # a plain prompt: a prefix to read and the token to continue from
        for job in jobs:
            if len(job.ids) < fewest:
                field = "prompt" if len(jobs) == 1 else f"prompt[{job.index}]"
                raise APIError(400, f"{field} has {len(job.ids)} tokens; a prompt without a session needs at least "
                                    f"{fewest} (with add_special_tokens, any non-empty text has)", "invalid_prompt",
                               param=field)
        return jobs

    def _release(self, jobs: list[PromptJob]) -> None:
        for job in jobs:
            self.router.finished(job.replica)

    async def _drain(self, req: CompletionRequest, jobs: list[PromptJob], choices: list[TextChoice],
                     prompt_logprobs: list, streams: dict[int, Any], first: dict[int, dict]) -> None:
        for choice in choices:
            if req.echo:
                job = jobs[choice.index // req.n]
                choice.echo(job.text, prompt_logprobs[job.index])
            if choice.index not in streams:
                choice.finish_reason = "length"

        async def drain(k: int) -> None:
            choices[k].add(first[k])
            if choices[k].finish_reason:
                return
            async for item in streams[k]:
                choices[k].add(item)

        try:
            await asyncio.wait_for(asyncio.gather(*(drain(k) for k in streams)),
                                   timeout=self.config.limits.request_timeout_s)
        except RayServeException as exc:
            raise to_api_error(exc) from exc

    async def _completion_sse(self, req: CompletionRequest, jobs: list[PromptJob], choices: list[TextChoice],
                              prompt_logprobs: list, streams: dict[int, Any], first: dict[int, dict],
                              total_prompt: int, session_tokens: int, request: Request, done: Any) -> AsyncIterator[str]:
        cid, created = completion_id(), int(time.time())
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        cached = len(jobs) * session_tokens + sum(first[k].get("cached_tokens", 0) for k in first
                                                  if k % req.n == 0)

        def event(payload: dict) -> str:  # vLLM's continuous_usage_stats: the usage so far on every chunk
            if include_usage and req.stream_options.continuous_usage_stats:
                payload["usage"] = usage(total_prompt, choices, cached).model_dump(exclude_unset=True)
            return sse(payload)

        try:
            for choice in choices:
                k = choice.index
                if req.echo:
                    job = jobs[k // req.n]
                    yield event(chunk(cid, self.model_name, created, choice.echo(job.text, prompt_logprobs[job.index])))
                if k not in streams:
                    choice.finish_reason = "length"
                    yield event(chunk(cid, self.model_name, created,
                                    {"index": k, "text": "", "logprobs": None, "finish_reason": "length"}))
                    continue
                pending = [first[k]]
                while True:
                    for item in pending:
                        piece = choice.add(item)
                        if piece is not None:
                            yield event(chunk(cid, self.model_name, created, piece))
                    if choice.finish_reason or await request.is_disconnected():
                        break
                    try:
                        pending = [await asyncio.wait_for(streams[k].__anext__(), self.config.limits.request_timeout_s)]
                    except StopAsyncIteration:
                        break
            if include_usage:
                yield sse({"id": cid, "object": "text_completion", "created": created, "model": self.model_name,
                           "choices": [], "usage": usage(total_prompt, choices, cached).model_dump(exclude_unset=True)})
            yield SSE_DONE
        except Exception as exc:  # mid-stream failure: report it in-band, then end the stream
            yield sse(error_body(to_api_error(exc)))
            yield SSE_DONE
        finally:
            cancel_all(streams.values())
            done()
