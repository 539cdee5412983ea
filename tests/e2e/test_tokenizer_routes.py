"""vLLM's tokenizer routes end to end: /tokenize (text and chat), /detokenize (the round trip),
GET /version, /v1/models cards with root and parent, and their 4xx errors."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import MAX_CONTEXT_TOKENS, assert_openai_error
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
TEXT = "Tokenizers turn text into ids: héllo, wörld! 123"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]


def test_tokenize_a_prompt_and_back(http, engine):
    reply = http.post("/tokenize", json={"model": MODEL, "prompt": TEXT}).json()
    expected = list(engine.tokenizer.encode(TEXT))  # add_special_tokens defaults to true for a prompt
    assert reply["tokens"] == expected and reply["count"] == len(expected)
    assert reply["max_model_len"] == MAX_CONTEXT_TOKENS and reply["token_strs"] is None
    bare = http.post("/tokenize", json={"prompt": TEXT, "add_special_tokens": False, "return_token_strs": True}).json()
    assert bare["tokens"] == list(engine.tokenizer.encode(TEXT, add_special_tokens=False))
    assert bare["token_strs"] == engine.tokenizer.convert_ids_to_tokens(bare["tokens"])
    back = http.post("/detokenize", json={"model": MODEL, "tokens": bare["tokens"]}).json()
    assert back == {"prompt": TEXT}


def test_tokenize_chat_messages_as_the_template_renders_them(http, engine):
    def template_ids(**options) -> list[int]:
        text = engine.tokenizer.apply_chat_template(MESSAGES, tokenize=False, **options)
        return list(engine.tokenizer.encode(text, add_special_tokens=False))

    answer = http.post("/tokenize", json={"model": MODEL, "messages": MESSAGES}).json()
    assert answer["tokens"] == template_ids(add_generation_prompt=True)
    open_ = http.post("/tokenize", json={"messages": MESSAGES, "add_generation_prompt": False}).json()
    assert open_["tokens"] == template_ids(add_generation_prompt=False) and open_["count"] < answer["count"]
    partial = MESSAGES + [{"role": "assistant", "content": "Hello! I"}]
    cont = http.post("/tokenize", json={"messages": partial, "add_generation_prompt": False,
                                        "continue_final_message": True}).json()
    text = engine.tokenizer.decode(cont["tokens"])
    assert text.endswith("Hello! I")


def test_version_and_model_cards(http):
    assert isinstance(http.get("/version").json()["version"], str)
    card = http.get("/v1/models").json()["data"][0]
    assert card["id"] == MODEL and card["parent"] is None and card["root"]
    assert http.get(f"/v1/models/{MODEL}").json()["root"] == card["root"]
    for ping in (http.get("/ping"), http.post("/ping")):  # vLLM's liveness route, as /health
        assert ping.status_code == 200 and ping.json()["model"] == MODEL


@pytest.mark.parametrize("path, body, param", [
    ("/tokenize", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "prompt"),
    ("/tokenize", {}, "prompt"),
    ("/tokenize", {"prompt": "a", "frobnicate": True}, "frobnicate"),
    ("/tokenize", {"prompt": "a", "add_generation_prompt": False}, "add_generation_prompt"),
    ("/tokenize", {"messages": [{"role": "user", "content": "b"}], "continue_final_message": True,
                   "add_generation_prompt": False}, "continue_final_message"),
    ("/tokenize", {"messages": [{"role": "user", "content": "b"}], "chat_template_kwargs": {"tokenize": True}},
     "chat_template_kwargs.tokenize"),
    ("/tokenize", {"messages": [{"role": "robot", "content": "b"}]}, "messages[0].role"),
    ("/detokenize", {"tokens": [1, -5]}, "tokens[1]"),
    ("/detokenize", {"tokens": [1] * (MAX_CONTEXT_TOKENS + 2049)}, "tokens"),
    ("/detokenize", {"tokens": "12"}, "tokens"),
])
def test_bad_bodies_are_400s_naming_the_field(http, path, body, param):
    error = assert_openai_error(http.post(path, json=body), 400)
    assert error["param"] == param, error


def test_unknown_model_404_and_huge_prompt_413(http):
    assert_openai_error(http.post("/tokenize", json={"model": "gpt-9", "prompt": "a"}), 404, "model_not_found")
    assert_openai_error(http.post("/detokenize", json={"model": "gpt-9", "tokens": [1]}), 404, "model_not_found")
    assert_openai_error(http.post("/tokenize", json={"prompt": "x" * 5_000_000}), 413)
