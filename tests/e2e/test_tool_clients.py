"""Third-party clients, unmodified, calling tools on the live app (pinned in the ``test`` extras):
LangChain ``ChatOpenAI`` (``bind_tools``, ``with_structured_output`` in its default json_schema
method and its function_calling method), the OpenAI Agents SDK with ``OpenAIChatCompletionsModel``
and a function tool, and LiteLLM (``litellm.Router`` through kvfleet's session-affinity client,
on a session and a plain request, named and required, streamed and not).

instructor has no test here because no release of it installs next to the pinned openai 3.57.0.
All 98 versions on the registry were tried (``pip install --dry-run instructor==X openai==3.57.0``,
pip 23.2.1): 1.17.0 -> "Cannot install instructor==1.17.0 and openai==3.57.0 because these package
versions have conflicting dependencies. The conflict is caused by: instructor 1.17.0 depends on
jiter<0.15 and >=0.6.1; openai 3.57.0 depends on jiter<1 and >=0.16.0"; 1.13.0-1.16.0 depend on
openai<3.0.0, 0.3.0-1.12.0 on openai<2.0.0, 0.2.x on openai<0.29. Its default mode (``Mode.TOOLS``:
``tools`` + a named ``tool_choice``) is the request shape of the named-choice tests (docs/tools.md)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: litellm's bundled cost map
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # no trace export (nothing leaves the machine)

import json
from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from tests.e2e.test_tools import QUESTION, TOOLS, WEATHER
from tests.serving import MODEL

pytestmark = pytest.mark.e2e


class Weather(BaseModel):
    """Current weather of a city."""

    city: str = Field(max_length=20)
    unit: Literal["celsius", "fahrenheit"]


def test_langchain_bind_tools(app_url):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=f"{app_url}/v1", api_key="unused", temperature=0, max_tokens=64,
                     max_retries=0)
    message = llm.bind_tools([Weather], tool_choice="Weather").invoke(QUESTION)
    assert [call["name"] for call in message.tool_calls] == ["Weather"]
    Weather.model_validate(message.tool_calls[0]["args"])
    assert message.tool_calls[0]["id"].startswith("call_")
    required = llm.bind_tools(TOOLS, tool_choice="any").invoke(QUESTION)  # LangChain's "any" = "required"
    assert required.tool_calls and not required.invalid_tool_calls
    auto = llm.bind_tools(TOOLS).invoke(QUESTION)  # tool_choice left to the server: auto
    assert not auto.invalid_tool_calls and all(c["name"] in ("get_weather", "get_time") for c in auto.tool_calls)
    assert auto.tool_calls or "<tool_call>" not in auto.content


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(app_url, method):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=f"{app_url}/v1", api_key="unused", temperature=0, max_tokens=64,
                     max_retries=0)
    weather = llm.with_structured_output(Weather, method=method).invoke(QUESTION)
    assert isinstance(weather, Weather) and weather.unit in ("celsius", "fahrenheit")


def test_openai_agents_sdk_calls_a_function_tool(app_url):
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    seen: list[dict] = []

    @function_tool
    def get_weather(city: Annotated[str, Field(max_length=20)], unit: Literal["celsius", "fahrenheit"]) -> str:
        """Current weather of a city."""
        seen.append({"city": city, "unit": unit})
        return f"21 degrees {unit} in {city}"

    model = OpenAIChatCompletionsModel(model=MODEL, openai_client=AsyncOpenAI(base_url=f"{app_url}/v1",
                                                                              api_key="unused", max_retries=0))
    agent = Agent(name="weather", instructions="Answer with the weather tool.", model=model, tools=[get_weather],
                  model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=128),
                  tool_use_behavior="stop_on_first_tool")
    result = Runner.run_sync(agent, QUESTION, max_turns=2)
    assert len(seen) >= 1 and seen[0]["unit"] in ("celsius", "fahrenheit")
    assert result.final_output == f"21 degrees {seen[0]['unit']} in {seen[0]['city']}"


def test_litellm_router_tool_calls_on_a_session_and_a_plain_request(app_url, client, tmp_path):
    """Named and required ``tool_choice`` through a ``litellm.Router`` with kvfleet's strategy,
    streamed and not: the arguments validate against the schema and are the app's own (the same
    request sent directly); the stream, reassembled from LiteLLM's chunks, is the same call."""
    from deployments.litellm_router import KvfleetRouterClient, KvfleetRouterConfig
    from tests.e2e.litellm_support import GROUP, assemble_tool_stream, calls_of, litellm_config
    from tests.e2e.test_tools import NAMED, SCHEMAS

    data = litellm_config({"kvfleet-a": f"{app_url}/v1", "kvfleet-b": f"{app_url}/v1"}, tmp_path / "dir.sqlite3")
    router = KvfleetRouterClient.from_model_list(data["model_list"], data["router_settings"],
                                                 KvfleetRouterConfig.model_validate(data["kvfleet_router"]))
    session = router.create_session(GROUP, "The weather service covers Lisbon and Paris.")
    messages = [{"role": "user", "content": QUESTION}]

    async def streamed(**fields) -> dict:
        return assemble_tool_stream([c async for c in await router.acompletion(GROUP, messages, stream=True, **fields)])

    for session_id in (session["id"], None):
        for tool_choice in (NAMED, "required"):
            fields = {"tools": TOOLS, "tool_choice": tool_choice, "temperature": 0, "max_tokens": 128}
            reply = router.completion(GROUP, messages, session_id=session_id, **fields)
            choice = reply.choices[0]
            calls = calls_of(choice.message.tool_calls)
            assert calls and choice.finish_reason == "tool_calls"
            for call_id, name, arguments in calls:
                assert call_id.startswith("call_") and (tool_choice != NAMED or name == "get_weather")
                jsonschema.validate(json.loads(arguments), SCHEMAS[name])
            direct = client.chat.completions.create(model=MODEL, messages=messages, **fields,
                                                    extra_body={"session_id": session_id} if session_id else {})
            assert [c[1:] for c in calls] == [c[1:] for c in calls_of(direct.choices[0].message.tool_calls)]
            stream = router.run(streamed(session_id=session_id, **fields))
            assert stream["finish_reason"] == "tool_calls" and stream["calls"] == calls
    router.delete_session(GROUP, session["id"])
