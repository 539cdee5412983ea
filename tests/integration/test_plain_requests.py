"""Plain requests (no session) over real HTTP: long prompts are compressed, and a prompt that
extends a stored prefix reuses it - with the same greedy answer as the engine computing it the
normal way (prefill the stored prefix under the press, feed the remainder)."""

from __future__ import annotations

import httpx
import pytest

from deployments.engine.sampling import SamplingParams
from kvpool import PressSpec
from tests.conftest import document
from tests.serving import MODEL, ray_cluster, serve_app, small_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PORT = 8020
PRESS = {"name": "knorm", "compression_ratio": 0.5}
THRESHOLD = 64


@pytest.fixture(scope="module")
def app():
    args = small_args(replicas={"count": 1},
                      plain={"press": PRESS, "compression_threshold_tokens": THRESHOLD, "block_tokens": 16})
    with ray_cluster(4):
        with serve_app(PORT, args) as base:
            yield base


def chat_with_usage(base: str, messages: list[dict]) -> tuple[str, dict]:
    r = httpx.post(f"{base}/v1/chat/completions", timeout=300, json={
        "model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 16})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"], r.json()["usage"]


def chat(base: str, messages: list[dict]) -> str:
    return chat_with_usage(base, messages)[0]


def prefix_stats(base: str) -> dict:
    return httpx.get(f"{base}/admin/stats", timeout=60).json()["replicas"]["replica-0"]["prefix_cache"]


def expected(engine, prefix_messages: list[dict], stored_prefix: list[dict] | None, question: list[dict]) -> str:
    """What the engine answers: prefill ``stored_prefix`` (or the whole prefix) compressed, feed the rest."""
    base_msgs = stored_prefix or prefix_messages
    _, base_ids = engine.frame_for(base_msgs)
    frame, prefix_ids = engine.frame_for(prefix_messages)
    assert prefix_ids[:len(base_ids)] == base_ids
    spec = PressSpec(**PRESS) if len(base_ids) >= THRESHOLD else PressSpec()
    cache = engine.prefill(base_ids, spec)
    suffix = engine.renderer.encode(engine.renderer.question_text(frame, question))
    steps = engine.generate_ids(cache, prefix_ids[len(base_ids):] + suffix, SamplingParams(max_tokens=16))
    return "".join(step.text for step in steps)


def test_long_plain_prompt_is_compressed_and_then_reused(app, engine):
    history = [{"role": "system", "content": "Answer briefly."},
               {"role": "user", "content": document(8)},
               {"role": "assistant", "content": "I have read the minutes."}]
    question = [{"role": "user", "content": "What is the secret code of the vault?"}]
    before = prefix_stats(app)
    first, first_usage = chat_with_usage(app, history + question)
    assert first == expected(engine, history, None, question)
    after_first = prefix_stats(app)
    assert after_first["misses"] == before["misses"] + 1 and after_first["entries"] == before["entries"] + 1
    assert first_usage["prompt_tokens_details"]["cached_tokens"] == 0  # prefilled for this request

    again, again_usage = chat_with_usage(app, history + question)
    assert again == first
    assert prefix_stats(app)["hits"] == after_first["hits"] + 1
    # the reused prefix is reported as cached; the prompt is the same size either way
    _, history_ids = engine.frame_for(history)
    assert again_usage["prompt_tokens_details"]["cached_tokens"] == len(history_ids)
    assert again_usage["prompt_tokens"] == first_usage["prompt_tokens"] > len(history_ids)

    longer = history + question + [{"role": "assistant", "content": first},
                                   {"role": "user", "content": "Where was Alice born?"}]
    extended = chat(app, longer)
    assert extended == expected(engine, longer[:-1], history, longer[-1:])
    assert prefix_stats(app)["hits"] == after_first["hits"] + 2


def test_short_plain_prompt_is_answered_uncompressed(app, engine):
    messages = [{"role": "user", "content": "Name a colour."}]
    frame, ids = engine.frame_for(messages[0]["content"])
    assert len(ids) < THRESHOLD
    cache = engine.prefill(messages[0]["content"], PressSpec())
    want = engine.answer(cache, [{"role": "user", "content": ""}], SamplingParams(max_tokens=16))[0]
    assert chat(app, messages) == want
