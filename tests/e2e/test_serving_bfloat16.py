"""An app whose model runs in bfloat16 (what ``model.dtype: auto`` picks on CUDA and on AMX /
AVX-512 BF16 CPUs) stores bfloat16 caches at half the bytes and answers, through the real stack,
token for token like the in-process bfloat16 engine; 4 questions at once are batched and answered
(not compared token for token: bfloat16 matmuls on CPU are not batch-invariant, see
tests/unit/engine/decode/test_batched_parity.py).
One extra app (one replica) on the shared cluster, only for this module."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import document
from tests.e2e.conftest import DEFAULT_PRESS, HTTP_TIMEOUT_S, QUESTIONS, Reference, create, user
from tests.serving import MODEL, small_args

pytestmark = pytest.mark.e2e
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def bf16_url(extra_app):
    with extra_app("bf16", small_args(model={"dtype": "bfloat16"}, replicas={"count": 1})) as url:
        yield url


@pytest.fixture(scope="module")
def bf16_reference(engines) -> Reference:
    return Reference(engines("bfloat16"))


def ask(base_url: str, session_id: str, question: str) -> str:
    reply = httpx.post(f"{base_url}/v1/chat/completions", timeout=HTTP_TIMEOUT_S, headers={"X-Session-Id": session_id},
                       json={"model": MODEL, "temperature": 0, "max_tokens": MAX_TOKENS, "messages": user(question)})
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["message"]["content"]


def test_bfloat16_session_bytes_and_answers_equal_the_bfloat16_engine(bf16_url, bf16_reference):
    session = create(bf16_url, {"context": document(), "press": DEFAULT_PRESS})
    ckv = bf16_reference.cache(document(), DEFAULT_PRESS)
    assert ckv.meta.dtype == "bfloat16" and session["tokens_kept"] == round(ckv.meta.kept_tokens)
    config = bf16_reference.engine.model.config
    bytes_per_token = config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 2 * 2
    assert session["bytes_stored"] == ckv.nbytes == session["tokens_kept"] * bytes_per_token
    expected = [bf16_reference.answer(document(), user(q), MAX_TOKENS)[0] for q in QUESTIONS]
    assert [ask(bf16_url, session["id"], q) for q in QUESTIONS] == expected
    assert "7341" in expected[0]
    with ThreadPoolExecutor(4) as pool:
        batched = list(pool.map(lambda q: ask(bf16_url, session["id"], q), [*QUESTIONS, QUESTIONS[0]]))
    assert all(answer.strip() for answer in batched)
