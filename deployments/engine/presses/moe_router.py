"""``moe_router`` (alias ``MoERouterPress``): a trained router over real kvpress scorers.

PiKVPress's ``MoERouterPress`` promises "a Mixture-of-Experts router that dynamically selects
compression strategies based on input features and cache usage". Here the experts are kvpress
0.5.5 scorer presses (``EXPERTS``: KnormPress, KeyDiffPress, ExpectedAttentionPress and
StreamingLLMPress's sink + recent-window prior), and for every layer and KV head a trained gate
(moe_gate.py) weighs them from features of the context's keys; ``router_type`` turns the gate's
probabilities into expert weights by a deterministic rule (moe_routing.py).

Scoring (``score``, shapes as kvpress's ``ScorerPress.score``: keys ``[1, H, T, d]`` -> scores
``[1, H, T]``): each expert's score is made comparable by a monotone transform (log for expected
attention) and a z-score over the head's tokens, then the scores are mixed with the routed
weights; kvpress's ``ScorerPress.compress`` keeps the top ``compute_n_kept(T, ratio)`` per head,
so the ratio is exact. A head routed to one expert keeps exactly that expert's tokens.

Options (PressSpec kwargs, ``GET /v1/presses``): ``router_type``, ``top_k``, ``capacity_factor``,
``importance_threshold``, ``adaptive_top_k`` (moe_routing.py); ``num_experts`` must match the
artifact (0: all of them); ``cache_aware`` raises the ratio with the replica's KV pool pressure
(``moe_routing.cache_aware_ratio``); ``router_path`` names a trained artifact under
``presses.artifact_dir`` (omitted: the one shipped for the embedded model); ``dropout`` and
``aux_loss_weight`` are accepted and inert (the router runs in eval mode and is trained
offline). Errors are PressSpecError (HTTP 422) naming the field.

``get_stats()`` returns what the last load routed (``layer_stats``: per layer, each head's
experts, weights and tokens kept), for the session view's ``press_stats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from kvpress import ExpectedAttentionPress, KeyDiffPress, KnormPress, ScorerPress, StreamingLLMPress
from kvpress.utils import compute_n_kept

from deployments.engine.presses.moe_gate import BUNDLED_DIR, EMBEDDED_ARTIFACT, RouterGate, input_features, load_gate
from deployments.engine.presses.moe_routing import ExpertRouter, cache_aware_ratio, validate_options
from kvpool.errors import PressSpecError

# expert name -> (kvpress scorer press, monotone transform making its scores comparable)
EXPERTS: dict[str, tuple[type[ScorerPress], Any]] = {
    "knorm": (KnormPress, None),
    "keydiff": (KeyDiffPress, None),
    "expected_attention": (ExpectedAttentionPress, lambda s: torch.log(s.clamp_min(1e-12))),
    "streaming_llm": (StreamingLLMPress, None),
}


def expert_scores(experts: dict[str, ScorerPress], compression_ratio: float, module, hidden_states, keys, values,
                  attentions, kwargs) -> torch.Tensor:
    """``[E, H, T]`` float32: each expert's kvpress score of one layer, transformed and z-scored
    per head (every expert scored at ``compression_ratio``, which the position prior depends on)."""
    out = []
    for name, press in experts.items():
        press.compression_ratio = compression_ratio
        score = press.score(module, hidden_states, keys, values, attentions, kwargs)[0].float()
        transform = EXPERTS[name][1]
        if transform is not None:
            score = transform(score)
        mean, std = score.mean(dim=-1, keepdim=True), score.std(dim=-1, keepdim=True, unbiased=False)
        out.append((score - mean) / std.clamp_min(1e-6))
    return torch.stack(out)


def gate_path(router_path: str | None) -> Path:
    """``router_path`` as the builder resolved it (under presses.artifact_dir), or the shipped artifact."""
    return Path(router_path) if router_path else BUNDLED_DIR / EMBEDDED_ARTIFACT


@dataclass
class MoERouterPress(ScorerPress):
    """See the module docstring. ``compression_ratio``: fraction of each head's tokens dropped."""

    compression_ratio: float = 0.0
    router_type: str = "adaptive"
    num_experts: int = 0
    top_k: int = 0
    capacity_factor: float = 1.0
    importance_threshold: float = 0.0
    adaptive_top_k: bool = False
    cache_aware: bool = False
    router_path: str | None = None
    dropout: float = 0.0  # inert: the router has no dropout (deterministic)
    aux_loss_weight: float = 0.0  # inert: no load-balancing loss is trained online
    pool_pressure: float | None = field(default=None, init=False)  # set by the builder (resolve(..., pool_pressure))
    requested_ratio: float | None = field(default=None, init=False)
    gate: RouterGate = field(init=False, repr=False)
    router: ExpertRouter = field(init=False, repr=False)
    experts: dict[str, ScorerPress] = field(init=False, repr=False)
    layer_stats: dict[int, dict] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0 or self.aux_loss_weight < 0:
            raise PressSpecError("press 'moe_router': 'dropout' must be in [0, 1) and 'aux_loss_weight' >= 0 "
                                 "(both are accepted and inert: the router is deterministic and trained offline)")
        self.gate = load_gate(gate_path(self.router_path))
        if self.num_experts not in (0, len(self.gate.experts)):
            raise PressSpecError(f"press 'moe_router' argument 'num_experts'={self.num_experts}: the router artifact "
                                 f"was trained over {len(self.gate.experts)} experts ({', '.join(self.gate.experts)})")
        unknown = [name for name in self.gate.experts if name not in EXPERTS]
        if unknown:
            raise PressSpecError(f"press 'moe_router': router artifact names unknown experts {unknown}; "
                                 f"known: {sorted(EXPERTS)}")
        options = validate_options(self.router_type, self.top_k, self.capacity_factor, self.importance_threshold,
                                   self.adaptive_top_k, len(self.gate.experts))
        self.router = ExpertRouter(options, self.gate.experts)
        self.experts = {name: EXPERTS[name][0]() for name in self.gate.experts}

    def post_init_from_model(self, model):
        """Start a load: check the artifact fits ``model``, apply ``cache_aware``, reset the stats."""
        config = model.config
        if (config.num_hidden_layers, config.num_key_value_heads) != (self.gate.num_layers, self.gate.num_kv_heads):
            raise PressSpecError(f"press 'moe_router': the router artifact was trained for {self.gate.model} "
                                 f"({self.gate.num_layers} layers x {self.gate.num_kv_heads} KV heads), not this model "
                                 f"({config.num_hidden_layers} x {config.num_key_value_heads}); train one with "
                                 "benchmarks/train_moe_router.py and name it in router_path")
        if self.requested_ratio is None:
            self.requested_ratio = self.compression_ratio
        if self.cache_aware:
            self.compression_ratio = cache_aware_ratio(self.requested_ratio, self.pool_pressure)
        for press in self.experts.values():
            press.post_init_from_model(model)
        self.router.reset(self.gate.num_layers, self.gate.num_kv_heads)
        self.layer_stats = {}

    def score(self, module, hidden_states, keys, values, attentions, kwargs) -> torch.Tensor:
        z = expert_scores(self.experts, self.compression_ratio, module, hidden_states, keys, values, attentions, kwargs)
        p = self.gate.probabilities(module.layer_idx, input_features(keys, self.compression_ratio))
        weights = self.router.route(p)
        self._record(module.layer_idx, weights, keys.shape[2])
        return torch.einsum("he,eht->ht", weights, z).unsqueeze(0).to(keys.dtype if keys.is_floating_point() else None)

    def _record(self, layer: int, weights: torch.Tensor, k_len: int) -> None:
        names = self.gate.experts
        kept = compute_n_kept(k_len, self.compression_ratio)
        rows = [[(names[e], round(float(w[e]), 4)) for e in range(len(names)) if round(float(w[e]), 4) > 0]
                for w in weights]  # experts whose weight shows at 4 decimals
        self.layer_stats[layer] = {"layer": layer, "experts": [[n for n, _ in row] for row in rows],
                                   "weights": [[w for _, w in row] for row in rows],
                                   "tokens_kept": [kept] * weights.shape[0]}

    def get_stats(self) -> dict:
        """What the last load did: ``{"router_type", "experts", "compression_ratio_requested",
        "compression_ratio_applied", "cache_aware", "pool_pressure", "layer_stats": [per layer
        {"layer", "experts": [per head [names]], "weights": [per head [floats]], "tokens_kept":
        [per head int]}], "expert_share": {name: mean weight over layers x heads},
        "avg_aux_loss": None}`` (PiKVPress's field; no auxiliary loss exists here)."""
        layers = [self.layer_stats[i] for i in sorted(self.layer_stats)]
        share = {name: 0.0 for name in self.gate.experts}
        slots = sum(len(s["experts"]) for s in layers) or 1
        for stats in layers:
            for names, weights in zip(stats["experts"], stats["weights"]):
                for name, weight in zip(names, weights):
                    share[name] += weight / slots
        requested = self.compression_ratio if self.requested_ratio is None else self.requested_ratio
        return {"press": "moe_router", "router_type": self.router_type, "experts": list(self.gate.experts),
                "compression_ratio_requested": requested, "compression_ratio_applied": self.compression_ratio,
                "cache_aware": self.cache_aware, "pool_pressure": self.pool_pressure,
                "expert_share": {k: round(v, 4) for k, v in share.items()}, "avg_aux_loss": None,
                "layer_stats": layers}
