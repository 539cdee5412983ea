"""TokenSampler: one request's (one choice's) token selection, stateful across decode steps.

Contract (the decode loops - today's one-row loop and the batched runner - rely on it):
``sampler(logits_row) -> TokenChoice`` where ``logits_row`` is the 1-D ``[vocab]`` tensor of the
next position. The sampler runs its logits processors (penalties, logit bias, min_tokens, grammar;
see ``base.py``) on a private copy, picks the token (greedy when ``temperature == 0``, else
temperature + top-k / top-p / min-p with the request's seeded generator), then records the choice in every
processor itself. Once a grammar is complete it returns EOS, so the loop ends the answer.

Reported logprobs are those of the model's own distribution, before any processing: vLLM's
default ``logprobs_mode="raw_logprobs"`` (log-softmax of the raw logits, without temperature,
penalties, bias or grammar mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from deployments.engine.sampling.base import LogitsProcessor
from deployments.engine.sampling.params import SamplingError, SamplingParams


GREEDY_BELOW = 1e-5
"""Temperatures below this sample greedily (vLLM's ``_SAMPLING_EPS``)."""


@dataclass(frozen=True)
class TokenChoice:
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()


class TokenSampler:
    """Picks the next token from logits; deterministic for a given seed."""

    def __init__(self, params: SamplingParams, device: torch.device,
                 processors: Sequence[LogitsProcessor] = ()):
        self.params = params
        self.processors = tuple(processors)
        self.produced = 0
        self.generator = None
        if params.temperature > 0:
            self.generator = torch.Generator(device=device)
            if params.seed is not None:
                self.generator.manual_seed(params.seed % (1 << 64))  # any JSON integer: torch takes uint64
            else:
                self.generator.seed()

    @property
    def may_stop(self) -> bool:
        """False while ``min_tokens`` are not yet produced (stop strings must not end the answer)."""
        return self.produced >= self.params.min_tokens

    def __call__(self, logits: torch.Tensor) -> TokenChoice:
        """``logits``: ``[vocab]`` float tensor for the next position."""
        processed = self._process(logits)
        token = self._pick(processed)
        for processor in self.processors:
            processor.record(token)
        self.produced += 1
        if not self.params.logprobs:
            return TokenChoice(token)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        top = ()
        if self.params.top_logprobs:
            values, ids = logprobs.topk(self.params.top_logprobs)
            top = tuple(zip(ids.tolist(), values.tolist()))
        return TokenChoice(token, float(logprobs[token]), top)

    def _process(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.processors:
            return logits
        row = logits.detach().to(torch.float32, copy=True)
        for processor in self.processors:
            processor.apply(row)
        if not torch.isfinite(row).any():
            raise SamplingError("no token is allowed at this step (the logit_bias / min_tokens / "
                                "structured-output constraints exclude every token)")
        return row

    def _pick(self, logits: torch.Tensor) -> int:
        """Greedy at temperature 0; else temperature, then top-k, top-p and min-p filtering (vLLM's
        order), then a draw with the request's generator."""
        p = self.params
        if p.temperature < GREEDY_BELOW:  # as vLLM: a temperature this small is greedy (dividing by it overflows)
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / p.temperature, dim=-1)
        if 0 < p.top_k < probs.shape[-1]:
            kth = probs.topk(p.top_k).values[-1]
            probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
            probs = probs / probs.sum()
        if p.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < p.top_p
            probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
        if p.min_p > 0.0:
            probs = torch.where(probs >= p.min_p * probs.max(), probs, torch.zeros_like(probs))
        return int(torch.multinomial(probs, 1, generator=self.generator))
