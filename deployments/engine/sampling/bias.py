"""Fixed per-token logit changes: ``logit_bias`` and ``min_tokens``.

- ``LogitBias`` (OpenAI ``logit_bias``): adds ``bias`` (in [-100, 100]) to the logit of each
  listed token id before sampling; -100 in practice bans a token, +100 forces it.
- ``MinTokens`` (vLLM ``min_tokens``; Hugging Face ``MinNewTokensLengthLogitsProcessor``): while
  fewer than ``min_tokens`` tokens were generated, the EOS ids get ``-inf`` (stop strings are held
  off by the detokenizer for the same span).
"""

from __future__ import annotations

import torch


class LogitBias:
    def __init__(self, bias: dict[int, float], device: torch.device):
        self.ids = torch.tensor(list(bias), dtype=torch.long, device=device)
        self.values = torch.tensor(list(bias.values()), dtype=torch.float32, device=device)

    def apply(self, logits: torch.Tensor) -> None:
        logits.index_add_(0, self.ids, self.values)

    def record(self, token_id: int) -> None:
        pass


class MinTokens:
    def __init__(self, min_tokens: int, eos_ids: set[int], device: torch.device):
        self.remaining = min_tokens
        self.eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)

    def apply(self, logits: torch.Tensor) -> None:
        if self.remaining > 0 and self.eos.numel():
            logits[self.eos] = float("-inf")

    def record(self, token_id: int) -> None:
        self.remaining -= 1
