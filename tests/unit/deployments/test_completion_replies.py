"""/v1/completions request model and reply building, without Ray: prompt shapes, the 400s the
schema raises, and that streamed pieces add up to the non-streamed choice (text and logprobs)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.ingress.completions.replies import TextChoice, usage
from deployments.ingress.completions.schema import CompletionRequest


def req(**fields) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "hi", **fields})


@pytest.mark.parametrize("prompt, prompts", [
    ("a", ["a"]), (["a", "b"], ["a", "b"]), ([1, 2, 3], [[1, 2, 3]]), ([[1, 2], [3]], [[1, 2], [3]])])
def test_prompt_shapes(prompt, prompts) -> None:
    assert req(prompt=prompt).prompts() == prompts


@pytest.mark.parametrize("fields, param", [
    ({"suffix": "x"}, "suffix"), ({"best_of": 2}, "best_of"), ({"prompt": []}, "prompt"),
    ({"prompt": [[1], []]}, "prompt[1]"), ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stop": list("abcde")}, "stop"), ({"logit_bias": {"5": 101}}, "logit_bias")])
def test_schema_errors_name_the_field(fields, param) -> None:
    with pytest.raises(ValidationError) as caught:
        req(**fields)
    assert caught.value.errors()[0]["ctx"]["error"].param == param


def test_strict_types_and_closed_body() -> None:
    for fields in ({"prompt": [1, "a"]}, {"echo": "yes"}, {"logprobs": True}, {"unknown": 1}, {"max_tokens": -1}):
        with pytest.raises(ValidationError):
            req(**fields)
    assert req(best_of=3, n=3).n == 3 and req(max_tokens=0).max_tokens == 0


def entry(token: str, logprob: float, top: list[tuple[str, float]]) -> dict:
    return {"token": token, "logprob": logprob, "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]}


ITEMS = [
    {"text": " Ber", "finish_reason": None, "prompt_tokens": 3, "completion_tokens": 1,
     "logprob": entry(" Ber", -0.5, [(" Ber", -0.5), (" Bon", -1.5)])},
    {"text": "lin", "finish_reason": None, "prompt_tokens": 3, "completion_tokens": 2,
     "logprob": entry("lin", -0.1, [("lin", -0.1)])},
    {"text": "", "finish_reason": "length", "prompt_tokens": 3, "completion_tokens": 2},
]
PROMPT = [{"token": "<s>", "logprob": None, "bytes": None, "top_logprobs": None},
          entry("The", -3.0, [("A", -1.0)]), entry(" city", -2.0, [(" city", -2.0)])]


def test_echo_then_tokens_stream_pieces_add_up_to_the_choice() -> None:
    streamed, whole = TextChoice(0, True), TextChoice(0, True)
    pieces = [streamed.echo("The city", PROMPT)] + [p for item in ITEMS if (p := streamed.add(item))]
    whole.echo("The city", PROMPT)
    for item in ITEMS:
        whole.add(item)
    choice = whole.choice()
    assert choice.text == "".join(p["text"] for p in pieces) == "The city Berlin"
    lp = choice.logprobs
    assert lp.tokens == ["<s>", "The", " city", " Ber", "lin"]
    assert lp.token_logprobs == [None, -3.0, -2.0, -0.5, -0.1]
    assert lp.top_logprobs[0] is None and lp.top_logprobs[1] == {"A": -1.0, "The": -3.0}  # the chosen one added
    assert lp.text_offset == [0, 3, 6, 11, 15]
    assert sum((p["logprobs"]["tokens"] for p in pieces), []) == lp.tokens
    assert pieces[-1]["finish_reason"] == "length" and choice.finish_reason == "length"


def test_without_logprobs_and_usage() -> None:
    choice = TextChoice(3, False)
    for item in ITEMS:
        choice.add({k: v for k, v in item.items() if k != "logprob"})
    assert choice.choice().logprobs is None and choice.choice().index == 3
    counted = usage(10, [choice, choice], 4)
    assert (counted.prompt_tokens, counted.completion_tokens, counted.total_tokens) == (10, 4, 14)
    assert counted.prompt_tokens_details.cached_tokens == 4
