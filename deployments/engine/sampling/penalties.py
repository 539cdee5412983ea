"""Repetition penalties over token counts, as vLLM applies them.

- ``RepetitionPenalty`` (vLLM ``repetition_penalty``; Hugging Face
  ``RepetitionPenaltyLogitsProcessor``; Keskar et al. 2019, CTRL): for every token id that occurs
  in the prompt *or* the generated text, a positive logit is divided by ``penalty`` and a negative
  one multiplied by it. ``penalty > 1`` discourages repeats, ``< 1`` encourages them, ``1`` is off.
- ``FrequencyPresencePenalty`` (OpenAI ``frequency_penalty`` / ``presence_penalty``, range
  [-2, 2]): over *generated* tokens only,
  ``logit[j] -= frequency_penalty * count[j] + presence_penalty * (count[j] > 0)``.
"""

from __future__ import annotations

import torch


class RepetitionPenalty:
    def __init__(self, penalty: float, prompt_ids: list[int], vocab_size: int, device: torch.device):
        self.penalty = penalty
        self.seen = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        ids = [t for t in prompt_ids if 0 <= t < vocab_size]
        if ids:
            self.seen[torch.tensor(ids, device=device)] = True

    def apply(self, logits: torch.Tensor) -> None:
        seen = self.seen[: logits.shape[-1]]
        scaled = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
        # a tiny penalty (any value > 0 is valid, e.g. 5e-324) overflows the division: stay finite so
        # the softmax that follows has no inf - inf
        finfo = torch.finfo(logits.dtype)
        logits.copy_(torch.where(seen, scaled.clamp(finfo.min, finfo.max), logits))

    def record(self, token_id: int) -> None:
        if 0 <= token_id < self.seen.shape[0]:
            self.seen[token_id] = True


class FrequencyPresencePenalty:
    def __init__(self, frequency: float, presence: float, vocab_size: int, device: torch.device):
        self.frequency, self.presence = frequency, presence
        self.counts = torch.zeros(vocab_size, dtype=torch.float32, device=device)

    def apply(self, logits: torch.Tensor) -> None:
        counts = self.counts[: logits.shape[-1]]
        logits -= self.frequency * counts + self.presence * (counts > 0).float()

    def record(self, token_id: int) -> None:
        if 0 <= token_id < self.counts.shape[0]:
            self.counts[token_id] += 1
