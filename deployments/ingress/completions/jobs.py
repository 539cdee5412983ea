"""The prompts of a ``POST /v1/completions`` request and their start on replicas: per prompt its
prompt log-probs (``echo`` with ``logprobs``), its ``n`` token streams and their first items, all
prompts at once; a prompt whose replica lost its model actors (or, on a session, the cache) starts
once more elsewhere (deployments/ingress/failover.py). A mixin of ``CompletionRoutes``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ray.serve.exceptions import RayServeException

from deployments.engine.sampling import SamplingParams
from deployments.ingress.completions.schema import CompletionRequest
from deployments.ingress.errors import to_api_error
from deployments.ingress.failover import ACTORS_GONE, CACHE_GONE, cancel_all, first_items, start_with_failover


@dataclass
class PromptJob:
    """One prompt of a request: its text (for ``echo`` and routing), its ids, and its replica."""

    index: int
    text: str
    ids: list[int]
    replica: str = ""


class CompletionJobs:
    """Needs ``self.replicas``, ``self.config``, ``self.router`` and ``self._first`` /
    ``self._session_elsewhere`` / ``self._plain_elsewhere`` (chat routes) from the Ingress."""

    replicas: dict[str, Any]

    async def _start_jobs(self, req: CompletionRequest, jobs: list[PromptJob], sampling: SamplingParams,
                          session_id: str | None, owner: str, press: dict | None,
                          scope: str) -> tuple[list[list[dict] | None], dict[int, Any], dict[int, dict]]:
        """Every prompt started at once: per prompt its tokens' log-prob entries (``echo`` with
        ``logprobs``, else None), and per choice index its token stream and first item. A prompt whose
        replica lost its model actors (or, on a session, the cache) starts once more elsewhere
        (deployments/ingress/failover.py); if any prompt fails, every opened stream is cancelled."""
        started = await asyncio.gather(*(self._start_job(req, job, sampling, session_id, owner, press, scope)
                                         for job in jobs), return_exceptions=True)
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            for result in started:
                if not isinstance(result, BaseException):
                    cancel_all(result[1].values())
            raise failed[0]
        streams = {k: s for _, job_streams, _ in started for k, s in job_streams.items()}
        first = {k: item for _, _, job_first in started for k, item in job_first.items()}
        return [logprobs for logprobs, _, _ in started], streams, first

    async def _start_job(self, req: CompletionRequest, job: PromptJob, sampling: SamplingParams,
                         session_id: str | None, owner: str, press: dict | None,
                         scope: str) -> tuple[list[dict] | None, dict[int, Any], dict[int, dict]]:
        async def start(name: str, moved: bool) -> tuple[list[dict] | None, dict[int, Any], dict[int, dict]]:
            logprobs = await self._job_logprobs(req, job, name, session_id, moved)
            streams = self._job_streams(req, job, name, sampling, session_id, press, scope, moved)
            return logprobs, streams, dict(zip(streams, await first_items(streams.values(), self._first)))

        async def move(name: str, exc: BaseException) -> str:
            if session_id:
                to = (await self._session_elsewhere(session_id, owner, name, exc))["replica"]
            else:
                to = self._plain_elsewhere(name, exc, lambda tried: self.router.pick(
                    [{"role": "user", "content": job.text}], press, scope, exclude=tried))
            self.router.finished(name)
            self.router.started(to)
            job.replica = to
            return to

        _, started = await start_with_failover(job.replica, start, move, CACHE_GONE if session_id else ACTORS_GONE)
        return started

    async def _job_logprobs(self, req: CompletionRequest, job: PromptJob, name: str, session_id: str | None,
                            moved: bool = False) -> list[dict] | None:
        """The prompt tokens' log-prob entries when ``echo`` and ``logprobs`` are set, else None."""
        if not (req.echo and req.logprobs is not None):
            return None
        call = self.replicas[name].prompt_logprobs.remote(session_id, job.ids, req.logprobs, moved)
        try:
            return await asyncio.wait_for(call, timeout=self.config.limits.request_timeout_s)
        except RayServeException as exc:
            raise to_api_error(exc) from exc

    def _job_streams(self, req: CompletionRequest, job: PromptJob, name: str, sampling: SamplingParams,
                     session_id: str | None, press: dict | None, scope: str, moved: bool = False) -> dict[int, Any]:
        """Choice index -> the replica's token stream, for one prompt (none when ``max_tokens`` is 0)."""
        if req.max_tokens == 0:
            return {}
        streams = {}
        for i in range(req.n):
            seed = None if req.seed is None else req.seed + i
            params = sampling.model_copy(update={"seed": seed}).model_dump(mode="json")
            streams[job.index * req.n + i] = self.replicas[name].options(stream=True).complete.remote(
                session_id, job.ids, params, press, scope, moved)
        return streams
