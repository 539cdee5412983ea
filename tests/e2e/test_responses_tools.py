"""Responses API function tools on the shared app: a function_call output item and its
function_call_output round trip (with previous_response_id and by re-sending the items, as the
Agents SDK does), streamed equal to non-streamed, and the OpenAI Agents SDK's default
(Responses) model running an agent with a function tool against the app, unmodified.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import assert_openai_error
from tests.serving import MODEL

pytestmark = pytest.mark.e2e

WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather of a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
ASK = "What is the weather in Oslo? Use the tool."


def test_required_tool_call_and_its_output_round_trip(client):
    call = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice="required", temperature=0,
                                   max_output_tokens=48, parallel_tool_calls=False)
    calls = [item for item in call.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert set(json.loads(calls[0].arguments)) == {"city"}
    assert call.output_text == ""  # calls only
    answer = client.responses.create(
        model=MODEL, previous_response_id=call.id, tools=[WEATHER], temperature=0, max_output_tokens=24,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"}])
    # only the tool output's turn is prefilled (~28 tokens; the tools block the chain holds is not
    # rendered again although this turn's parallel_tool_calls differs; 202 before the fix)
    assert answer.usage.input_tokens - answer.usage.input_tokens_details.cached_tokens < 40
    assert answer.output and answer.status in ("completed", "incomplete")
    # the same turn re-sent whole (the Agents SDK's default: no previous_response_id) reads the same prompt
    resent = client.responses.create(
        model=MODEL, tools=[WEATHER], temperature=0, max_output_tokens=24, store=False,
        input=[{"role": "user", "content": ASK}, calls[0].model_dump(),
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"}])
    assert resent.usage.input_tokens == answer.usage.input_tokens


def test_named_tool_choice_streams_the_call(client):
    kwargs = dict(model=MODEL, input=ASK, tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
                  temperature=0, max_output_tokens=48, store=False)
    plain = client.responses.create(**kwargs)
    events = list(client.responses.create(stream=True, **kwargs))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    final = events[-1].response
    assert [(i.name, i.arguments) for i in final.output] == [(i.name, i.arguments) for i in plain.output]


def test_bad_tools_name_the_responses_field(app_url):
    body = {"model": MODEL, "input": "hi", "tools": [{**WEATHER, "name": "bad name"}]}
    error = assert_openai_error(httpx.post(f"{app_url}/v1/responses", json=body), 400)
    assert error.get("param") == "tools[0].name", error
    body = {"model": MODEL, "input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}
    assert_openai_error(httpx.post(f"{app_url}/v1/responses", json=body), 400)


def test_agents_sdk_runs_an_agent_with_a_function_tool(app_url):
    agents = pytest.importorskip("agents", reason="openai-agents is not installed (test extras)")
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the current weather of a city."""
        seen.append(city)
        return f"It is sunny and 21 C in {city}."

    model = agents.OpenAIResponsesModel(model=MODEL, openai_client=AsyncOpenAI(base_url=f"{app_url}/v1",
                                                                             api_key="unused", max_retries=0))
    agent = agents.Agent(name="weather", instructions="Answer weather questions with the get_weather tool.",
                         tools=[get_weather], model=model,
                         model_settings=agents.ModelSettings(temperature=0, tool_choice="required", max_tokens=200,
                                                             parallel_tool_calls=False))
    result = agents.Runner.run_sync(agent, ASK, max_turns=4)
    assert seen, "the agent never called the tool"
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and "tool_call_output_item" in kinds and kinds[-1] == "message_output_item"


def test_litellm_router_responses_chain_stays_on_its_deployment(app_url, tmp_path):
    """``Router.aresponses`` through kvfleet's strategy: a continuation goes back to the deployment
    that answered (LiteLLM encodes it in the response id) and reads its stored cache."""
    from deployments.litellm_router import KvfleetRouterClient, KvfleetRouterConfig
    from tests.e2e.litellm_support import GROUP, litellm_config

    data = litellm_config({"kvfleet-a": f"{app_url}/v1", "kvfleet-b": f"{app_url}/v1"}, tmp_path / "dir.sqlite3")
    client = KvfleetRouterClient.from_model_list(data["model_list"], data["router_settings"],
                                                 KvfleetRouterConfig.model_validate(data["kvfleet_router"]))
    first = client.run(client.router.aresponses(model=GROUP, input="Name a primary color.", temperature=0,
                                                max_output_tokens=16))
    second = client.run(client.router.aresponses(model=GROUP, input="Name another one.", temperature=0,
                                                 max_output_tokens=16, previous_response_id=first.id))
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens
    assert second.usage.input_tokens - second.usage.input_tokens_details.cached_tokens < 30
