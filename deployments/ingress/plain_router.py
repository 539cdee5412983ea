"""PlainRouter: the ingress side of plain-request routing (the decision is control_plane.routing).

For each plain request it plans the prompt as a replica will (deployments.common.plain_prompt: the same
prefix, the same press), hashes that prefix in the caller's scope (deployments.common.prefix_scope),
asks the configured policy (``plain.routing.policy``) with the replicas' in-flight request counts,
and records where the prefix went. In-flight counts are this ingress's own (``started`` /
``finished`` around every request it sends to a replica, session or plain).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from control_plane.ids import ReplicaId
from control_plane.routing import PlainRouteRequest, RouteDecision, make_routing_policy, text_block_hashes
from deployments.config import PlainRequestConfig
from deployments.common.plain_prompt import PlainPromptPlanner


class PlainRouter:
    def __init__(self, config: PlainRequestConfig, replica_names: list[str], model_name: str):
        self.config, self.model_name = config, model_name
        self.replica_names = list(replica_names)
        self.policy = make_routing_policy(config.routing)
        self.planner = PlainPromptPlanner(config)
        self.in_flight: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()  # "prefix" | "new" | "overloaded" | "turn"

    def pick(self, messages: list[dict[str, Any]], press: dict | None, scope: str,
             exclude: frozenset[str] = frozenset()) -> RouteDecision:
        """The replica for a plain prompt, not one of ``exclude`` (at least one replica must be left);
        raises PromptError (400) for malformed messages."""
        plan = self.planner.plan(messages, press)
        request = PlainRouteRequest(text_block_hashes(scope, self.model_name, plan.press, plan.prefix,
                                                      self.config.routing.block_chars))
        loads = {ReplicaId(name): self.in_flight[name] for name in self.replica_names if name not in exclude}
        decision = self.policy.choose(request, loads)
        self.policy.observe(request, decision)
        self.decisions[_kind(decision)] += 1
        return decision

    def counters(self) -> dict[str, int]:
        """Routing decisions so far, for /metrics: ``plain_routed_<prefix|new|overloaded|turn>``."""
        return {f"plain_routed_{kind}": n for kind, n in self.decisions.items()}

    def lost(self, replica: str) -> None:
        """``replica`` lost its model actors (and with them every prefix it stored): route no prompt
        there for a prefix it no longer holds."""
        self.policy.forget_replica(ReplicaId(replica))

    def started(self, replica: str) -> None:
        self.in_flight[replica] += 1

    def finished(self, replica: str) -> None:
        self.in_flight[replica] = max(0, self.in_flight[replica] - 1)


def _kind(decision: RouteDecision) -> str:
    if decision.matched_blocks:
        return "prefix"
    if "overloaded" in decision.reason:
        return "overloaded"
    return "new" if decision.policy == "prefix_affinity" else "turn"
