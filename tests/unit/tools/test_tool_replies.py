"""The chat replies of tool calls, from real generations of the embedded model, without Ray: the
non-streamed ``ChatCompletion`` (chat/replies.py) and the streamed deltas fed token by token
(tools/stream.py) say the same bytes, and the official openai client's models read both."""

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from deployments.engine.sampling import SamplingParams
from deployments.ingress.chat.replies import ChoiceAccumulator, chunk, completion_body
from deployments.ingress.tools import ToolDeltaStream, finish_reason, plan_tools
from kvpool import PressSpec
from tests.unit.tools.test_tool_grammar import QUESTION, TOOLS
from tests.unit.tools.test_tool_parse import assemble

MODEL = "embedded:smollm2-135m-instruct"


@pytest.mark.parametrize("choice", [{"type": "function", "function": {"name": "get_weather"}}, "required"])
def test_streamed_and_whole_replies_agree(engine, choice):
    plan = plan_tools(TOOLS, choice, True, QUESTION)
    messages = plan.prompt_messages(QUESTION)
    cache = engine.prefill(messages[:-1], PressSpec())
    params = SamplingParams(max_tokens=96, temperature=0.0, guided=plan.guided)
    steps = list(engine.generate(cache, messages[-1:], params))
    whole, deltas = ChoiceAccumulator(0), []
    stream = ToolDeltaStream(plan.choice, "seed:0")
    for n, step in enumerate(steps):
        final = n == len(steps) - 1
        whole.add({"text": step.text, "prompt_tokens": 1, "completion_tokens": n + 1,
                   "finish_reason": step.finish_reason if final else None})
        deltas += stream.feed("".join(whole.text), final=final)
    body = ChatCompletion.model_validate(completion_body("chatcmpl-1", MODEL, [whole], False, 0, None, plan.choice,
                                                         "seed"))
    message = body.choices[0].message
    assert body.choices[0].finish_reason == "tool_calls" == finish_reason(stream.turn, whole.finish_reason)
    assert message.content is None and message.tool_calls
    for delta in deltas:
        ChatCompletionChunk.model_validate(chunk("chatcmpl-1", MODEL, 1, delta))
    assert assemble(deltas) == (None, [c.model_dump() for c in message.tool_calls])
