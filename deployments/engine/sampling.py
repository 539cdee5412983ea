"""Sampling parameters and token selection (greedy, temperature, top-p, seed, logprobs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """What to generate. ``temperature == 0`` is greedy (argmax, as kvpress's pipeline does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    ignore_eos: bool = False


@dataclass(frozen=True)
class TokenChoice:
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()


class TokenSampler:
    """Picks the next token from logits; deterministic for a given seed."""

    def __init__(self, params: SamplingParams, device: torch.device):
        self.params = params
        self.generator = None
        if params.temperature > 0:
            self.generator = torch.Generator(device=device)
            if params.seed is not None:
                self.generator.manual_seed(params.seed % (1 << 64))  # any JSON integer: torch takes uint64
            else:
                self.generator.seed()

    def __call__(self, logits: torch.Tensor) -> TokenChoice:
        """``logits``: ``[vocab]`` float tensor for the next position."""
        p = self.params
        if p.temperature == 0:
            token = int(logits.argmax())
        else:
            probs = torch.softmax(logits.float() / p.temperature, dim=-1)
            if p.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                keep = sorted_probs.cumsum(-1) - sorted_probs < p.top_p
                probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        if not p.logprobs:
            return TokenChoice(token)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        top = ()
        if p.top_logprobs:
            values, ids = logprobs.topk(p.top_logprobs)
            top = tuple(zip(ids.tolist(), values.tolist()))
        return TokenChoice(token, float(logprobs[token]), top)
