"""Build one request's TokenSampler with the logits processors its parameters ask for.

Order (as vLLM's sampler): logit_bias and min_tokens, then the penalties, then the grammar mask
last, so a completed grammar's forced EOS wins over min_tokens. Raises ``SamplingError`` (HTTP
400) for a logit_bias token id outside the vocabulary and ``GrammarError`` for a spec that does
not compile.
"""

from __future__ import annotations

import torch

from deployments.engine.sampling.base import LogitsProcessor
from deployments.engine.sampling.bias import LogitBias, MinTokens
from deployments.engine.sampling.grammar import GrammarCompiler, GrammarProcessor
from deployments.engine.sampling.params import SamplingError, SamplingParams
from deployments.engine.sampling.penalties import FrequencyPresencePenalty, RepetitionPenalty
from deployments.engine.sampling.sampler import TokenSampler


def build_sampler(params: SamplingParams, prompt_ids: list[int], device: torch.device, vocab_size: int,
                  eos_ids: set[int], grammars: GrammarCompiler | None) -> TokenSampler:
    """``prompt_ids``: every token the model read before the answer (context + question), which
    ``repetition_penalty`` counts; ``vocab_size``: the width of a logits row."""
    processors: list[LogitsProcessor] = []
    if params.logit_bias:
        outside = sorted(t for t in params.logit_bias if t >= vocab_size)
        if outside:
            raise SamplingError(f"logit_bias token ids {outside[:5]} are outside this model's vocabulary "
                                f"(ids 0..{vocab_size - 1})")
        processors.append(LogitBias(params.logit_bias, device))
    outside = sorted(t for t in params.stop_token_ids if t >= vocab_size)
    if outside:
        raise SamplingError(f"stop_token_ids {outside[:5]} are outside this model's vocabulary (ids 0..{vocab_size - 1})")
    ending = params.ending_ids(eos_ids)
    if params.min_tokens and ending:
        processors.append(MinTokens(params.min_tokens, ending, device))
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenalty(params.repetition_penalty, prompt_ids, vocab_size, device))
    if params.frequency_penalty or params.presence_penalty:
        processors.append(FrequencyPresencePenalty(params.frequency_penalty, params.presence_penalty,
                                                   vocab_size, device))
    if params.guided is not None:
        if grammars is None:
            raise SamplingError("structured outputs are not available on this engine")
        processors.append(GrammarProcessor(grammars.matcher(params.guided), grammars.tokenizer_vocab, eos_ids))
    return TokenSampler(params, device, processors)
