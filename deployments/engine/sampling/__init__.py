"""Sampling: ``SamplingParams`` (what to generate), ``TokenSampler`` (one request's token choice,
with its logits processors) and the processors, one idea per file: ``penalties.py``
(repetition / frequency / presence), ``bias.py`` (logit_bias, min_tokens), ``grammar.py``
(structured outputs via llguidance). ``factory.build_sampler`` is what ``KVEngine.new_sampler``
calls. Imports torch and llguidance, never Ray."""

from deployments.engine.sampling.params import GuidedSpec, SamplingError, SamplingParams
from deployments.engine.sampling.sampler import TokenChoice, TokenSampler

__all__ = ["GuidedSpec", "SamplingError", "SamplingParams", "TokenChoice", "TokenSampler"]
