"""Routing rules of the ``moe_router`` press: gate probabilities -> expert weights, deterministically.

The router (moe_router.py) gives, for every attention layer and KV head, a probability over the
experts (``p``, shape ``[heads, experts]``, from a trained gate). A ``router_type`` turns ``p``
into the weights the experts' normalised scores are mixed with. Every rule is a pure function of
``p`` (and, for ``eplb``, of the layers routed before in the same load): no sampling, no
dropout, so the same text and artifact always give the same kept tokens.

The five names are PiKVPress's (``MoERouterPress(router_type=...)``); the rules are kvfleet's:

- ``pikv``: hard top-1 - each head uses its most probable expert alone.
- ``topk_balanced``: top-k mixture - the ``top_k`` most probable experts, weights ``p``
  renormalised over them (``top_k`` = number of experts: the full trained mixture).
- ``adaptive``: top-k with k per head - experts below ``importance_threshold`` are dropped
  (the most probable one always stays); with ``adaptive_top_k`` k also follows the router's
  entropy, ``k = 1 + round(H(p) / log(E) * (top_k - 1))`` (a confident router uses one expert).
- ``eplb``: load-balanced top-1 - like ``pikv``, but each expert serves at most
  ``ceil(capacity_factor * layers * heads / E)`` (layer, head) slots of one load; a head whose
  first choice is full takes its next most probable expert (layers in model order).
- ``hierarchical``: group, then expert - experts form a *content* group (scores of keys and
  values) and a *position* group (position priors); the group with the larger total ``p`` wins,
  then its ``top_k`` most probable experts are mixed (renormalised within the group).

Options that mean nothing here are accepted and inert (``dropout``: the router runs in eval
mode; ``aux_loss_weight``: no load-balancing loss is trained online); ``validate_options``
rejects the others where they would be ignored, naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from kvpool.errors import PressSpecError

ROUTER_TYPES = ("pikv", "topk_balanced", "adaptive", "eplb", "hierarchical")
POSITION_EXPERTS = ("streaming_llm",)  # the hierarchical rule's position group; every other expert is content
# cache_aware: above PRESSURE_START of the pool's bytes in use the ratio rises linearly, reaching
# ratio + RATIO_BAND (at most MAX_RATIO) when the pool is full
PRESSURE_START, RATIO_BAND, MAX_RATIO = 0.5, 0.25, 0.9


@dataclass(frozen=True)
class RoutingOptions:
    """The press's routing arguments, checked (``validate_options``)."""

    router_type: str
    top_k: int
    capacity_factor: float
    importance_threshold: float
    adaptive_top_k: bool


def _reject(name: str, router_type: str, value, needs: str) -> PressSpecError:
    return PressSpecError(f"press 'moe_router' argument {name!r}={value!r} has no effect with router_type "
                          f"{router_type!r}; it applies to {needs}")


def validate_options(router_type: str, top_k: int, capacity_factor: float, importance_threshold: float,
                     adaptive_top_k: bool, num_experts: int) -> RoutingOptions:
    """Check the routing arguments against ``num_experts``; PressSpecError (HTTP 422) naming the
    field for an unknown router type, an out-of-range value, or an option the rule would ignore.

    ``top_k`` 0 means the rule's default (pikv / eplb / hierarchical 1, topk_balanced 2, adaptive
    all experts); ``capacity_factor`` 1.0 and ``importance_threshold`` 0.0 are the defaults that
    every rule accepts.
    """
    if router_type not in ROUTER_TYPES:
        raise PressSpecError(f"press 'moe_router' argument 'router_type' must be one of {', '.join(ROUTER_TYPES)}; "
                             f"got {router_type!r}")
    if not 0 <= top_k <= num_experts:
        raise PressSpecError(f"press 'moe_router' argument 'top_k' must be in [1, {num_experts}] (the number of "
                             f"experts; 0: the router type's default), got {top_k}")
    if router_type in ("pikv", "eplb") and top_k > 1:
        raise _reject("top_k", router_type, top_k, "topk_balanced, adaptive and hierarchical (pikv and eplb are top-1)")
    if capacity_factor < 1.0:
        raise PressSpecError("press 'moe_router' argument 'capacity_factor' must be >= 1.0 (below it the experts "
                             f"cannot serve every head), got {capacity_factor}")
    if capacity_factor != 1.0 and router_type != "eplb":
        raise _reject("capacity_factor", router_type, capacity_factor, "router_type 'eplb'")
    if not 0.0 <= importance_threshold < 1.0:
        raise PressSpecError("press 'moe_router' argument 'importance_threshold' must be in [0, 1), "
                             f"got {importance_threshold}")
    if importance_threshold and router_type != "adaptive":
        raise _reject("importance_threshold", router_type, importance_threshold, "router_type 'adaptive'")
    if adaptive_top_k and router_type != "adaptive":
        raise _reject("adaptive_top_k", router_type, adaptive_top_k, "router_type 'adaptive'")
    default_k = {"pikv": 1, "eplb": 1, "topk_balanced": 2, "adaptive": num_experts, "hierarchical": 1}[router_type]
    return RoutingOptions(router_type, min(top_k or default_k, num_experts), capacity_factor, importance_threshold,
                          adaptive_top_k)


def _top_k_weights(p: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per row, ``p`` kept on its ``k[row]`` largest entries (ties: lower index first) and renormalised."""
    order = torch.argsort(-p, dim=-1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(p.shape[-1]).expand_as(order))
    kept = torch.where(ranks < k.unsqueeze(-1), p, torch.zeros_like(p))
    return kept / kept.sum(dim=-1, keepdim=True)


@dataclass
class ExpertRouter:
    """Applies one ``RoutingOptions`` rule layer by layer; holds the ``eplb`` load of one prefill.

    ``route(p)``: ``p`` ``[heads, experts]`` gate probabilities of one layer -> ``[heads, experts]``
    weights (each row sums to 1). ``reset(layers, heads)`` starts a new load.
    """

    options: RoutingOptions
    experts: tuple[str, ...]
    used: list[int] = field(default_factory=list)
    capacity: int = 0

    def reset(self, layers: int, heads: int) -> None:
        self.used = [0] * len(self.experts)
        self.capacity = math.ceil(self.options.capacity_factor * layers * heads / len(self.experts))

    def route(self, p: torch.Tensor) -> torch.Tensor:
        rule = self.options.router_type
        heads, n = p.shape
        if rule == "pikv":
            return _top_k_weights(p, torch.ones(heads, dtype=torch.long))
        if rule == "topk_balanced":
            return _top_k_weights(p, torch.full((heads,), self.options.top_k))
        if rule == "adaptive":
            return self._adaptive(p)
        if rule == "eplb":
            return self._balanced_top1(p)
        return self._hierarchical(p)

    def _adaptive(self, p: torch.Tensor) -> torch.Tensor:
        k = torch.full((p.shape[0],), self.options.top_k)
        if self.options.adaptive_top_k and p.shape[1] > 1:
            entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1) / math.log(p.shape[1])
            k = 1 + torch.round(entropy * (self.options.top_k - 1)).long()
        weights = _top_k_weights(p, k)
        keep = (p >= self.options.importance_threshold) | (p == p.max(dim=-1, keepdim=True).values)
        weights = torch.where(keep, weights, torch.zeros_like(weights))
        return weights / weights.sum(dim=-1, keepdim=True)

    def _balanced_top1(self, p: torch.Tensor) -> torch.Tensor:
        if not self.used:
            raise RuntimeError("ExpertRouter.reset(layers, heads) must run before routing an eplb load")
        weights = torch.zeros_like(p)
        for head in range(p.shape[0]):
            for expert in torch.argsort(-p[head], stable=True).tolist():
                if self.used[expert] < self.capacity:
                    self.used[expert] += 1
                    weights[head, expert] = 1.0
                    break
        return weights

    def _hierarchical(self, p: torch.Tensor) -> torch.Tensor:
        position = torch.tensor([name in POSITION_EXPERTS for name in self.experts])
        if position.all() or not position.any():
            return _top_k_weights(p, torch.full((p.shape[0],), self.options.top_k))
        pos_mass = (p * position).sum(-1, keepdim=True)
        in_group = torch.where(pos_mass > 1 - pos_mass, position.expand_as(p), (~position).expand_as(p))
        grouped = torch.where(in_group, p, torch.zeros_like(p))
        k = torch.minimum(torch.full((p.shape[0],), self.options.top_k), in_group.sum(-1))
        return _top_k_weights(grouped, k)


def cache_aware_ratio(ratio: float, pool_pressure: float | None) -> float:
    """The ratio a ``cache_aware`` load runs at: ``ratio`` until the pool is ``PRESSURE_START`` full,
    then rising linearly to ``min(ratio + RATIO_BAND, MAX_RATIO)`` at a full pool (never lower
    than ``ratio``). ``pool_pressure``: bytes held / byte budget of the replica's KV pool, in
    [0, 1]; None (no pool known) keeps ``ratio``."""
    if pool_pressure is None or ratio >= MAX_RATIO:
        return ratio
    fill = min(max((pool_pressure - PRESSURE_START) / (1 - PRESSURE_START), 0.0), 1.0)
    return round(ratio + (min(ratio + RATIO_BAND, MAX_RATIO) - ratio) * fill, 4)
