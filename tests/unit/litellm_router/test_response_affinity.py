"""previous_response_id affinity: a chain continues on the deployment that answered it."""

from __future__ import annotations

import asyncio

import pytest
from litellm.responses.utils import ResponsesAPIRequestUtils

from deployments.litellm_router.errors import NoDeploymentError
from deployments.litellm_router.response_affinity import response_home
from deployments.litellm_router.strategy import SessionAffinityStrategy


def encoded(model_id: str, response_id: str = "resp_abc") -> str:
    return ResponsesAPIRequestUtils._build_responses_api_response_id("hosted_vllm", model_id, response_id)


def test_response_home_reads_the_deployment_litellm_encoded():
    rid = encoded("kvfleet-b")
    assert response_home({"previous_response_id": rid}) == (rid, "kvfleet-b")
    assert response_home({"previous_response_id": "resp_plain"}) is None  # not returned through a router
    assert response_home({}) is None


class FakeRouter:
    def __init__(self, deployments):
        self.deployments = deployments

    async def select(self, model, request, **_):
        return self.deployments


class FakeConfig:
    def serves(self, model):
        return True


def deployments(*ids):
    return [{"model_name": "g", "model_info": {"id": i}, "litellm_params": {}} for i in ids]


def test_strategy_sends_a_continuation_to_its_home_and_fails_clearly_without_it():
    strategy = SessionAffinityStrategy(FakeRouter(deployments("kvfleet-a", "kvfleet-b")), sessions=None,
                                       config=FakeConfig())
    pick = lambda rid: asyncio.run(strategy.async_get_available_deployment(
        "g", request_kwargs={"previous_response_id": rid}))
    for _ in range(3):  # never round-robined away
        assert pick(encoded("kvfleet-b"))["model_info"]["id"] == "kvfleet-b"
    with pytest.raises(NoDeploymentError, match="kvfleet-c"):
        pick(encoded("kvfleet-c"))
