"""Prompt log-probs: how likely the model finds each token of a prompt, given the tokens before it.

The loglikelihood measure of evaluation harnesses (lm-evaluation-harness ``loglikelihood``) and
of vLLM's ``echo`` + ``logprobs`` on ``/v1/completions``: for prompt tokens ``t_0..t_{T-1}``,
entry ``j >= 1`` is ``log p(t_j | t_<j)`` with the ``top_k`` most likely tokens at that position;
entry 0 is None (nothing predicts the first token). Log-probs are the log-softmax of the raw
logits (vLLM's ``raw_logprobs``), as for generated tokens (deployments/engine/sampling/sampler.py).

``score_hidden`` applies the output head in row chunks, so a long prompt never holds a whole
``[T, vocab]`` float matrix at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_ROWS_PER_CHUNK = 256


@dataclass(frozen=True)
class PromptTokenLogprob:
    """``token_id``'s log-prob at its position and the ``top_k`` ``(token_id, logprob)`` alternatives."""

    token_id: int
    logprob: float
    top_logprobs: tuple[tuple[int, float], ...] = ()


def score_hidden(hidden: torch.Tensor, head: torch.nn.Module, token_ids: list[int],
                 top_k: int) -> list[PromptTokenLogprob | None]:
    """``hidden``: ``[T, H]`` final hidden states of ``token_ids`` (row ``j`` predicts token ``j + 1``);
    ``head``: the model's output embedding. Returns ``T`` entries, the first None."""
    out: list[PromptTokenLogprob | None] = [None]
    targets = torch.tensor(token_ids[1:], device=hidden.device)
    for start in range(0, len(token_ids) - 1, _ROWS_PER_CHUNK):
        stop = min(start + _ROWS_PER_CHUNK, len(token_ids) - 1)
        logprobs = torch.log_softmax(head(hidden[start:stop]).float(), dim=-1)
        chosen = logprobs.gather(1, targets[start:stop, None])[:, 0].tolist()
        top_values, top_ids = (logprobs.topk(top_k, dim=-1) if top_k else (None, None))
        for row in range(stop - start):
            top = () if top_ids is None else tuple(zip(top_ids[row].tolist(), top_values[row].tolist()))
            out.append(PromptTokenLogprob(int(targets[start + row]), float(chosen[row]), top))
    return out
