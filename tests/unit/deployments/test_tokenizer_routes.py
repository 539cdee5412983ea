"""The tokenizer routes' handlers and the chat-template renderer, without Ray or HTTP: answers equal
the tokenizer's own, options follow vLLM, bad bodies are APIErrors naming the field, keys count."""

from __future__ import annotations

import asyncio

import pytest

from deployments.config import AppConfig
from deployments.engine.engine import ContextTooLongError
from deployments.engine.model_loader import ModelConfig
from deployments.ingress.auth.authenticator import Authenticator
from deployments.ingress.auth.config import SecurityConfig
from deployments.ingress.chat_template import render_chat
from deployments.ingress.errors import APIError
from deployments.ingress.guards.context_limit import ContextLimit
from deployments.ingress.guards.limits import RequestLimits
from deployments.ingress.tokenizer.routes import TokenizerRoutes
from deployments.ingress.tokenizer.schema import DetokenizeRequest, TokenizeRequest

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, I am"}]


class Routes(TokenizerRoutes):
    def __init__(self, keys: dict[str, str] | None = None):
        self.config = AppConfig.model_validate({"limits": {"max_context_tokens": 100, "max_tokens_limit": 50}})
        self.auth = Authenticator(SecurityConfig(api_keys=keys or {}))
        self.limits = RequestLimits(self.config.limits)
        self.context_limit = ContextLimit(ModelConfig(), 100)
        self.vocab_size = len(self.context_limit.renderer.tokenizer)
        self.model_name = "m"

    def _check_model(self, model: str) -> None:
        if model != self.model_name:
            raise APIError(404, "unknown model", "model_not_found", param="model")


@pytest.fixture(scope="module")
def routes() -> Routes:
    return Routes()


def tokenize(routes: Routes, **body) -> dict:
    return asyncio.run(routes.tokenize(TokenizeRequest.model_validate(body), None, None))


def test_prompt_tokens_are_the_tokenizers(routes) -> None:
    tokenizer = routes.context_limit.renderer.tokenizer
    reply = tokenize(routes, prompt="Hello world", model="m")
    assert reply["tokens"] == tokenizer.encode("Hello world") and reply["count"] == len(reply["tokens"])
    assert reply["max_model_len"] == 100 and reply["token_strs"] is None
    bare = tokenize(routes, prompt="Hello world", add_special_tokens=False, return_token_strs=True)
    assert bare["tokens"] == tokenizer.encode("Hello world", add_special_tokens=False)
    assert bare["token_strs"] == tokenizer.convert_ids_to_tokens(bare["tokens"])
    back = asyncio.run(routes.detokenize(DetokenizeRequest(tokens=bare["tokens"]), None, None))
    assert back == {"prompt": "Hello world"}


def test_messages_follow_the_template_options(routes) -> None:
    renderer = routes.context_limit.renderer
    tokenizer = renderer.tokenizer
    closed = tokenize(routes, messages=MESSAGES, add_generation_prompt=False)
    assert closed["tokens"] == tokenizer.encode(tokenizer.apply_chat_template(MESSAGES, tokenize=False),
                                                add_special_tokens=False)
    cont = render_chat(renderer, MESSAGES, add_generation_prompt=False, continue_final_message=True)
    assert cont.endswith("Hello, I am") and tokenize(routes, messages=MESSAGES)["count"] > closed["count"]


@pytest.mark.parametrize("options, param", [
    ({"continue_final_message": True}, "continue_final_message"),
    ({"continue_final_message": True, "add_generation_prompt": False, "messages": MESSAGES[:1]},
     "continue_final_message"),
    ({"chat_template_kwargs": {"add_generation_prompt": False}}, "chat_template_kwargs.add_generation_prompt"),
    ({"chat_template_kwargs": {f"k{i}": i for i in range(33)}}, "chat_template_kwargs"),
])
def test_template_option_errors(routes, options, param) -> None:
    options = {"messages": MESSAGES, **options}
    with pytest.raises(APIError) as caught:
        render_chat(routes.context_limit.renderer, **options)
    assert caught.value.status == 400 and caught.value.param == param


def test_bounds_and_ids(routes) -> None:
    with pytest.raises(ContextTooLongError):  # 413 from the character bound, before tokenizing
        tokenize(routes, prompt="x" * 10_000_000)
    with pytest.raises(APIError) as caught:
        asyncio.run(routes.detokenize(DetokenizeRequest(tokens=[1, routes.vocab_size]), None, None))
    assert caught.value.param == "tokens[1]"
    with pytest.raises(APIError) as caught:
        asyncio.run(routes.detokenize(DetokenizeRequest(tokens=[1] * 151), None, None))
    assert caught.value.param == "tokens" and caught.value.code == "limit_exceeded"
    with pytest.raises(APIError) as caught:
        tokenize(routes, prompt="a", model="other")
    assert caught.value.status == 404


def test_keys_are_checked() -> None:
    secured = Routes(keys={"sk-good": "alice"})
    with pytest.raises(APIError) as caught:
        asyncio.run(secured.tokenize(TokenizeRequest(prompt="a"), "Bearer sk-bad", None))
    assert caught.value.status == 401
    assert asyncio.run(secured.tokenize(TokenizeRequest(prompt="a"), "Bearer sk-good", None))["count"] >= 1


def test_one_input_exactly() -> None:
    for body in ({}, {"prompt": "a", "messages": MESSAGES}, {"prompt": "a", "continue_final_message": True}):
        with pytest.raises(ValueError):
            TokenizeRequest.model_validate(body)
