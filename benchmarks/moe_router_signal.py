"""The training signal of the ``moe_router`` press: what each expert scores, and what matters.

For one calibration context this runs the embedded engine's model twice:

1. the context, under a capturing press that records, at every attention layer, the experts'
   normalised kvpress scores (``moe_router.expert_scores``, the press's own code) at each
   training ratio, and the gate's input features (``moe_gate.input_features``);
2. held-back queries, KVzip-style: "repeat the context" followed by the context again, fed after
   the context's cache with eager attention. Their attention weights ``A`` give each context
   token's importance: KVzip's score ``c[h, i] = max over the head group's queries q of A[q, i]``
   (``signal="kvzip"``), or the first-order change of the attention output when it is dropped,
   ``mean over q of A[q, i] * |v_i - o_q|`` with ``o_q = A[q] @ V`` (``signal="output"``).

``Signal.lost(scores, n_kept)`` is the loss the router is fitted on: the share of importance in
the tokens a score drops. ``Signal.output_error`` is the true attention-output error of a kept set
(per layer, held-back queries, renormalised attention), used to validate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from kvpress import BasePress
from transformers import DynamicCache

from deployments.engine.attn_impl import attention_implementation
from deployments.engine.presses.moe_gate import input_features
from deployments.engine.presses.moe_router import EXPERTS, expert_scores

REPEAT_PROMPT = "\n\nRepeat the previous context exactly.\n"


@dataclass
class _CapturePress(BasePress):
    """Records expert scores per ratio and features at every layer; prunes nothing."""

    ratios: tuple[float, ...] = ()
    experts: dict = field(default_factory=dict)
    z: dict = field(default_factory=dict)  # layer -> [R, E, H, T]
    x: dict = field(default_factory=dict)  # layer -> [R, H, F]

    def post_init_from_model(self, model):
        for press in self.experts.values():
            press.post_init_from_model(model)

    def compress(self, module, hidden_states, keys, values, attentions, kwargs):
        layer = module.layer_idx
        self.z[layer] = torch.stack([expert_scores(self.experts, r, module, hidden_states, keys, values,
                                                   attentions, kwargs) for r in self.ratios])
        self.x[layer] = torch.stack([input_features(keys, r) for r in self.ratios])
        return keys, values


@dataclass
class Signal:
    """One context's signal. ``z``: ``[L, R, E, H, T]`` expert scores; ``x``: ``[L, R, H, F]``
    features; ``c``: ``[L, H, T]`` token importance; for validation ``attn`` / ``values`` per layer
    (``[Hq, Tq, Tk]`` held-back attention, ``[H, Tk, d]`` values; Tk = T context + held-back)."""

    doc_id: str
    ratios: tuple[float, ...]
    z: torch.Tensor
    x: torch.Tensor
    c: torch.Tensor
    attn: list[torch.Tensor] | None = None
    values: list[torch.Tensor] | None = None

    @property
    def tokens(self) -> int:
        return int(self.c.shape[-1])

    def output_error(self, layer: int, keep: torch.Tensor) -> float:
        """Mean relative attention-output error of the held-back queries at ``layer`` when only
        ``keep`` (``[H, T]`` bool) of the context is kept (held-back tokens always kept)."""
        attn, values = self.attn[layer], self.values[layer]
        groups = attn.shape[0] // values.shape[0]
        full_keep = torch.cat([keep, torch.ones(keep.shape[0], attn.shape[-1] - keep.shape[1], dtype=torch.bool)], -1)
        mask = full_keep.repeat_interleave(groups, dim=0).unsqueeze(1).float()  # [Hq, 1, Tk]
        v = values.repeat_interleave(groups, dim=0)
        full = attn @ v
        kept = attn * mask
        pruned = (kept / kept.sum(-1, keepdim=True).clamp_min(1e-12)) @ v
        return float(((pruned - full).norm(dim=-1) / full.norm(dim=-1).clamp_min(1e-6)).mean())


def _importance(attn: torch.Tensor, values: torch.Tensor, context: int, signal: str) -> torch.Tensor:
    """``[H, T]`` importance of the context tokens for the held-back queries: ``kvzip`` (default) is
    KVzip's score, the largest attention any query of the head group pays the token; ``output``
    is the first-order output change, mean over queries of ``A[q, i] * |v_i - o_q|``."""
    groups = attn.shape[0] // values.shape[0]
    a = attn.float()
    if signal == "kvzip":
        return a[:, :, :context].amax(dim=1).view(values.shape[0], groups, context).amax(dim=1)
    v = values.repeat_interleave(groups, dim=0).float()  # [Hq, Tk, d]
    o = a @ v  # [Hq, Tq, d]
    vc = v[:, :context]
    dist2 = (vc.pow(2).sum(-1).unsqueeze(1) + o.pow(2).sum(-1).unsqueeze(-1) - 2 * o @ vc.transpose(1, 2))
    c = (a[:, :, :context] * dist2.clamp_min(0).sqrt()).mean(dim=1)  # [Hq, T]
    return c.view(values.shape[0], groups, context).mean(dim=1)


def capture(engine, context_ids: list[int], ratios: tuple[float, ...], doc_id: str,
            keep_attention: bool = False, signal: str = "kvzip") -> Signal:
    """The signal of one context (``engine``: a KVEngine; runs under its lock, eager attention for
    the held-back pass). ``keep_attention`` keeps per-layer attention/values for ``output_error``."""
    model = engine.model
    press = _CapturePress(ratios=ratios, experts={name: cls() for name, (cls, _) in EXPERTS.items()})
    held = engine.tokenizer.encode(REPEAT_PROMPT, add_special_tokens=False) + list(context_ids)
    weights: dict[int, torch.Tensor] = {}

    def keep_weights(module, args, kwargs, out):
        if out[1] is not None:  # eager attention returns its weights
            weights[module.layer_idx] = out[1][0].detach()

    hooks = [layer.self_attn.register_forward_hook(keep_weights, with_kwargs=True) for layer in model.model.layers]
    cache = DynamicCache()
    try:
        with engine._lock, torch.inference_mode():
            with attention_implementation(model, "sdpa"), press(model):
                model.model(input_ids=torch.tensor([context_ids]), past_key_values=cache)
            weights.clear()
            with attention_implementation(model, "eager"):
                model.model(input_ids=torch.tensor([held]), past_key_values=cache)
    finally:
        for hook in hooks:
            hook.remove()
    n_layers, t = len(model.model.layers), len(context_ids)
    values = [cache.layers[i].values[0] for i in range(n_layers)]
    c = torch.stack([_importance(weights[i], values[i], t, signal) for i in range(n_layers)])
    z = torch.stack([press.z[i] for i in range(n_layers)])
    x = torch.stack([press.x[i] for i in range(n_layers)])
    signal = Signal(doc_id, tuple(ratios), z, x, c)
    if keep_attention:  # every 4th held-back query: output_error's cost, not its meaning, changes
        signal.attn = [weights[i][:, ::4].float() for i in range(n_layers)]
        signal.values = [v.float() for v in values]
    return signal


def n_kept(tokens: int, ratio: float) -> int:
    """kvpress's compute_n_kept for ratios < 1 (int(T * (1 - r)), at least 1)."""
    return max(1, int(tokens * (1 - ratio))) if ratio < 1 else 0


def lost_share(scores: torch.Tensor, c: torch.Tensor, keep: int) -> torch.Tensor:
    """Share of importance ``c`` (``[..., T]``) in the tokens NOT among the top ``keep`` of ``scores``."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    kept = c.gather(-1, order[..., :keep]).sum(-1)
    return 1 - kept / c.sum(-1).clamp_min(1e-12)


def log_progress(done: int, total: int, what: str) -> str:
    width = 20
    filled = math.floor(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what}"
