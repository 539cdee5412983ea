"""A user's custom press that uses ``moe_router`` as one of its experts (allowlisted in a test)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kvpress import KnormPress, ScorerPress

from deployments.engine.presses.moe_router import MoERouterPress


@dataclass
class RouterAndKnormPress(ScorerPress):
    """Score = the moe_router's mixed score + ``knorm_weight`` x a z-scored key-norm score."""

    compression_ratio: float = 0.0
    knorm_weight: float = 0.5
    router: MoERouterPress = field(default_factory=MoERouterPress, init=False)
    knorm: KnormPress = field(default_factory=KnormPress, init=False)

    def post_init_from_model(self, model):
        self.router.compression_ratio = self.compression_ratio
        self.router.post_init_from_model(model)

    def score(self, module, hidden_states, keys, values, attentions, kwargs):
        routed = self.router.score(module, hidden_states, keys, values, attentions, kwargs).float()
        norm = self.knorm.score(module, hidden_states, keys, values, attentions, kwargs).float()
        norm = (norm - norm.mean(-1, keepdim=True)) / norm.std(-1, keepdim=True).clamp_min(1e-6)
        return routed + self.knorm_weight * norm
