"""POST /v1/completions end to end: the official ``openai`` client (plain and on a stored session,
streamed and not), the echo + logprobs loglikelihood shape checked against the in-process model,
the raw request shapes of lm-evaluation-harness ``local-completions`` and of ``vllm bench serve``
sent with httpx, LiteLLM's ``text_completion`` through a ``litellm.Router``, and every 400."""

from __future__ import annotations

import asyncio
import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: litellm's bundled cost map

import httpx
import pytest
import torch

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, HTTP_TIMEOUT_S, MAX_CONTEXT_TOKENS, _torch_threads, assert_openai_error
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
PROMPT = "The capital of France is Paris. The capital of Germany is"
PROMPTS = ["Water boils at a temperature of", "The first three prime numbers are"]


def ids_of(engine, text: str, special: bool = True) -> list[int]:
    return list(engine.tokenizer.encode(text, add_special_tokens=special))


def plain_reference(engine, ids: list[int], max_tokens: int, **sampling) -> tuple[str, int, str]:
    """What a plain (uncompressed: short) completion of ``ids`` must be: prefill all but the last
    token, continue from it, greedy."""
    from deployments.engine.sampling import SamplingParams
    from kvpool.press_spec import PressSpec

    with _torch_threads(1):
        ckv = engine.prefill(ids[:-1], PressSpec())
        return _run(engine, ckv, ids[-1:], SamplingParams(max_tokens=max_tokens, **sampling))


def _run(engine, ckv, ids, params) -> tuple[str, int, str]:
    text, count, finish = [], 0, None
    for step in engine.generate_ids(ckv, ids, params):
        text.append(step.text)
        count += step.token is not None
        finish = step.finish_reason or finish
    return "".join(text), count, finish


def session_reference(engine, reference, ids: list[int], max_tokens: int) -> tuple[str, int, str]:
    from deployments.engine.sampling import SamplingParams

    ckv = reference.cache(document(), DEFAULT_PRESS)
    with _torch_threads(1):
        return _run(engine, ckv, ids, SamplingParams(max_tokens=max_tokens))


def model_logprobs(engine, ids: list[int]) -> torch.Tensor:
    """``[T, vocab]`` log-softmax of a plain forward over ``ids``: row j-1 scores token j."""
    with _torch_threads(1), torch.inference_mode():
        return torch.log_softmax(engine.model(torch.tensor([ids])).logits[0].float(), -1)


def sse_events(response: httpx.Response) -> list[dict]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[len("data: "):]))
    return events


# ---- the official client ------------------------------------------------------------------------

def test_plain_prompt_matches_the_engine(client, engine):
    expected, count, finish = plain_reference(engine, ids_of(engine, PROMPT), 12)
    reply = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == expected and reply.choices[0].finish_reason == finish
    assert reply.usage.prompt_tokens == len(ids_of(engine, PROMPT))
    assert reply.usage.completion_tokens == count
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + count


def test_default_max_tokens_is_openais_16(client):
    reply = client.completions.create(model=MODEL, prompt=PROMPT, temperature=0, extra_body={"ignore_eos": True})
    assert reply.usage.completion_tokens == 16 and reply.choices[0].finish_reason == "length"


def test_streamed_text_is_byte_identical(client):
    whole = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20, temperature=0)
    chunks = list(client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_session_prompt_continues_the_stored_context(client, engine, reference, facts_session):
    prompt = " The secret code of the vault is"
    expected, count, _ = session_reference(engine, reference, ids_of(engine, prompt, special=False), 10)
    reply = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, temperature=0,
                                      extra_body={"session_id": facts_session["id"]})
    assert reply.choices[0].text == expected and reply.usage.completion_tokens == count
    assert reply.usage.prompt_tokens == facts_session["tokens_read"] + len(ids_of(engine, prompt, special=False))
    assert reply.usage.prompt_tokens_details.cached_tokens == facts_session["tokens_read"]
    streamed = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, temperature=0, stream=True,
                                         extra_body={"session_id": facts_session["id"]})
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected


def test_list_of_prompts_times_n_choices(client):
    reply = client.completions.create(model=MODEL, prompt=PROMPTS, n=2, max_tokens=6, temperature=0)
    assert sorted(c.index for c in reply.choices) == [0, 1, 2, 3]
    single = [client.completions.create(model=MODEL, prompt=p, max_tokens=6, temperature=0).choices[0].text
              for p in PROMPTS]
    by_index = {c.index: c.text for c in reply.choices}
    assert single[0] != single[1]  # choice index = prompt_index * n + i
    assert [by_index[k] for k in range(4)] == [single[0], single[0], single[1], single[1]]
    assert reply.usage.completion_tokens == sum(len(c.logprobs.tokens) if c.logprobs else 0 for c in reply.choices) \
        or reply.usage.completion_tokens > 0


def test_token_id_prompts(client, engine):
    ids = ids_of(engine, PROMPT)
    text_reply = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    ids_reply = client.completions.create(model=MODEL, prompt=ids, max_tokens=8, temperature=0)
    both = client.completions.create(model=MODEL, prompt=[ids, ids_of(engine, PROMPTS[0])], max_tokens=8, temperature=0)
    assert ids_reply.choices[0].text == text_reply.choices[0].text == both.choices[0].text
    assert ids_reply.usage.prompt_tokens == len(ids)


def test_logprobs_of_generated_tokens(client, engine):
    reply = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0, logprobs=3,
                                      extra_body={"ignore_eos": True})
    lp = reply.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert "".join(lp.tokens) == reply.choices[0].text
    assert lp.text_offset[0] == 0 and all(b > a for a, b in zip(lp.text_offset, lp.text_offset[1:]))
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 3 <= len(top) <= 4 and top[token] == value == max(top.values())  # greedy: the top-1
    ids = ids_of(engine, PROMPT)
    first = model_logprobs(engine, ids)[-1]
    assert lp.token_logprobs[0] == pytest.approx(float(first.max()), abs=1e-3)


def test_echo_logprobs_is_the_loglikelihood_of_the_prompt(client, engine):
    ids = ids_of(engine, PROMPT)
    ref = model_logprobs(engine, ids)
    for max_tokens, generated in ((1, 1), (0, 0)):
        reply = client.completions.create(model=MODEL, prompt=PROMPT, echo=True, logprobs=1, max_tokens=max_tokens,
                                          temperature=0)
        choice = reply.choices[0]
        lp = choice.logprobs
        assert choice.text.startswith(PROMPT) and len(choice.text) > len(PROMPT) * generated
        assert len(lp.token_logprobs) == len(ids) + generated
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        for j in range(1, len(ids)):
            assert lp.token_logprobs[j] == pytest.approx(float(ref[j - 1, ids[j]]), abs=1e-3), j
            assert max(lp.top_logprobs[j].values()) == pytest.approx(float(ref[j - 1].max()), abs=1e-3)
        assert lp.tokens[1:len(ids)] == [engine.tokenizer.decode([t]) for t in ids[1:]]
    streamed = list(client.completions.create(model=MODEL, prompt=PROMPT, echo=True, logprobs=1, max_tokens=1,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text + \
        client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0).choices[0].text
    streamed_logprobs = sum((c.choices[0].logprobs.token_logprobs for c in streamed), [])
    assert streamed_logprobs[0] is None and len(streamed_logprobs) == len(ids) + 1
    assert streamed_logprobs[1:len(ids)] == pytest.approx(lp.token_logprobs[1:], abs=1e-4)


def test_echo_on_a_session_scores_the_prompt_after_the_context(client, engine, reference, facts_session):
    prompt = " The secret code of the vault is"
    ids = ids_of(engine, prompt, special=False)
    ckv = reference.cache(document(), DEFAULT_PRESS)
    with _torch_threads(1):
        expected = engine.prompt_logprobs(ckv, ids)
    reply = client.completions.create(model=MODEL, prompt=prompt, echo=True, logprobs=0, max_tokens=0,
                                      extra_body={"session_id": facts_session["id"]})
    got = reply.choices[0].logprobs.token_logprobs
    assert got[0] is None and got[1:] == pytest.approx([e.logprob for e in expected[1:]], abs=1e-3)
    assert reply.choices[0].text == prompt


def test_top_k_and_min_p_are_honoured(client):
    greedy = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=0)
    for extra in ({"top_k": 1}, {"min_p": 1.0}):
        hot = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=10, temperature=1.8, seed=3,
                                        extra_body=extra)
        assert hot.choices[0].text == greedy.choices[0].text, extra  # only the top token survives the filter


def test_response_format_constrains_a_completion(client):
    reply = client.completions.create(model=MODEL, prompt="A colour:", max_tokens=48, temperature=0,
                                      extra_body={"response_format": {"type": "json_schema", "json_schema": {
                                          "name": "c", "schema": {"type": "object", "additionalProperties": False,
                                                                  "properties": {
                                              "colour": {"type": "string", "enum": ["red", "blue"]}},
                                              "required": ["colour"]}}}})
    assert json.loads(reply.choices[0].text)["colour"] in ("red", "blue")


# ---- raw request shapes of third-party clients ----------------------------------------------------

def test_lm_evaluation_harness_loglikelihood_request(http, engine):
    """local-completions ``_create_payload(generate=False)`` and ``parse_logprobs``: a batch of
    context + continuation token lists, ``echo``, ``logprobs: 1``, ``max_tokens: 1``."""
    pairs = [("The capital of France is", " Paris"), ("Two plus two equals", " four")]
    encoded = [(ids_of(engine, c), ids_of(engine, x, special=False)) for c, x in pairs]
    payload = {"model": MODEL, "prompt": [c + x for c, x in encoded], "temperature": 0, "max_tokens": 1,
               "logprobs": 1, "seed": 1234, "echo": True}
    out = http.post("/v1/completions", json=payload).json()
    choices = sorted(out["choices"], key=lambda c: c["index"])
    assert len(choices) == 2
    for choice, (context, continuation) in zip(choices, encoded):
        ctxlen = len(context)
        logprob = sum(choice["logprobs"]["token_logprobs"][ctxlen:-1])
        ids = context + continuation
        ref = model_logprobs(engine, ids)
        expected = sum(float(ref[j - 1, ids[j]]) for j in range(ctxlen, len(ids)))
        assert logprob == pytest.approx(expected, abs=1e-3)
        is_greedy = all(tok == max(top.values()) for tok, top in zip(choice["logprobs"]["token_logprobs"][ctxlen:-1],
                                                                   choice["logprobs"]["top_logprobs"][ctxlen:-1]))
        assert is_greedy == all(int(ref[j - 1].argmax()) == ids[j] for j in range(ctxlen, len(ids)))


def test_lm_evaluation_harness_generate_until_request(http, engine):
    payload = {"model": MODEL, "prompt": PROMPTS, "max_tokens": 24, "temperature": 0, "stop": ["\n\n", "."],
               "seed": 1234}
    out = http.post("/v1/completions", json=payload).json()
    texts = [c["text"] for c in sorted(out["choices"], key=lambda c: c["index"])]
    for text, prompt in zip(texts, PROMPTS):
        expected, _, _ = plain_reference(engine, ids_of(engine, prompt), 24, stop=("\n\n", "."))
        assert text == expected and "." not in text


def test_vllm_bench_serve_request(http, app_url):
    """``vllm bench serve``: the model from ``/v1/models`` ``data[0]["root"]`` (its tokenizer is
    loaded from there), then ``openai-completions`` streamed requests."""
    from transformers import AutoTokenizer

    card = http.get("/v1/models").json()["data"][0]
    assert card["id"] == MODEL and card["parent"] is None
    tokenizer = AutoTokenizer.from_pretrained(card["root"])
    prompt = tokenizer.decode(tokenizer.encode("hello " * 30, add_special_tokens=False))
    payload = {"model": card["id"], "prompt": prompt, "temperature": 0.0, "repetition_penalty": 1.0,
               "max_tokens": 12, "logprobs": None, "stream": True, "stream_options": {"include_usage": True},
               "ignore_eos": True}
    with httpx.stream("POST", f"{app_url}/v1/completions", json=payload, timeout=HTTP_TIMEOUT_S,
                      headers={"Authorization": "Bearer EMPTY"}) as response:
        assert response.status_code == 200
        events = sse_events(response)
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert text and events[-1]["usage"]["completion_tokens"] == 12
    assert events[-1]["usage"]["prompt_tokens"] == len(tokenizer.encode(prompt))


def test_litellm_router_text_completion(app_url, engine, reference, tmp_path):
    """``text_completion`` through the repository's LiteLLM Router (configs/litellm.yaml, both
    deployments pointed at the shared app): LiteLLM sends an ``openai/`` model that is not one of
    OpenAI's chat models to the native ``/v1/completions``."""
    from deployments.litellm_router import KvfleetRouterClient, KvfleetRouterConfig
    from tests.e2e.litellm_support import GROUP, litellm_config

    data = litellm_config({"kvfleet-a": f"{app_url}/v1", "kvfleet-b": f"{app_url}/v1"}, tmp_path / "sessions.sqlite3")
    kvfleet = KvfleetRouterClient.from_model_list(data["model_list"], data["router_settings"],
                                                  KvfleetRouterConfig.model_validate(data["kvfleet_router"]))
    router = kvfleet.router
    expected, _, _ = plain_reference(engine, ids_of(engine, PROMPT), 8)
    prompt = " The secret code of the vault is"
    on_session, _, _ = session_reference(engine, reference, ids_of(engine, prompt, special=False), 8)

    async def ask() -> tuple[str, str, str]:  # the strategy routes asynchronously (as the proxy calls it)
        reply = await router.atext_completion(model=GROUP, prompt=PROMPT, max_tokens=8, temperature=0)
        streamed = await router.atext_completion(model=GROUP, prompt=PROMPT, max_tokens=8, temperature=0, stream=True)
        session = await kvfleet.acreate_session(GROUP, document())
        continued = await router.atext_completion(model=GROUP, prompt=prompt, max_tokens=8, temperature=0,
                                                  session_id=session["id"])
        return (reply.choices[0].text, "".join([c.choices[0].text or "" async for c in streamed]),
                continued.choices[0].text)

    text, streamed_text, continued = asyncio.run(ask())
    assert text == expected  # a chat completion of the same text would answer differently
    assert streamed_text == expected
    assert continued == on_session


# ---- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, param", [
    ({"suffix": " end"}, "suffix"),
    ({"best_of": 3, "n": 1}, "best_of"),
    ({"frobnicate": 1}, "frobnicate"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [[1, 2], []]}, "prompt[1]"),
    ({"prompt": [1, 10_000_000]}, "prompt[1]"),
    ({"prompt": ["a"] * 33}, "prompt"),
    ({"prompt": ["a"] * 9, "n": 4}, "prompt"),
    ({"prompt": [5]}, "prompt"),
    ({"prompt": "", "add_special_tokens": False}, "prompt"),
    ({"logprobs": 21}, "logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"n": 99}, "n"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"top_k": -2}, "top_k"),
    ({"min_p": 2}, "min_p"),
    ({"response_format": {"type": "xml"}}, "response_format"),
])
def test_bad_requests_are_400s_naming_the_field(http, body, param):
    error = assert_openai_error(http.post("/v1/completions", json={"model": MODEL, "prompt": PROMPT, **body}), 400)
    assert error["param"] == param or param in error["message"], error


def test_unknown_model_is_404_and_long_prompts_413(http):
    assert_openai_error(http.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"}), 404, "model_not_found")
    long = "word " * (MAX_CONTEXT_TOKENS + 10)
    assert_openai_error(http.post("/v1/completions", json={"model": MODEL, "prompt": long}), 413,
                        "context_length_exceeded")
    assert_openai_error(http.post("/v1/completions", json={"model": MODEL, "prompt": [5] * (MAX_CONTEXT_TOKENS + 1)}),
                        413, "context_length_exceeded")


def test_session_errors(http, facts_session):
    assert_openai_error(http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "session_id": "nope"}), 404)
    assert_openai_error(http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "session_id": facts_session["id"],
                                                           "press": {"name": "knorm", "compression_ratio": 0.5}}), 400)
