"""Streams and observability on the shared app: a client that disconnects mid-stream cancels the
generation (the decode actor's active streams drop back to 0 long before max_tokens), and
``/metrics`` exposes requests, TTFT, tokens, sessions and KV bytes held per tier - with values that
follow the requests made."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import QUESTIONS, metric_values, user, wait_for
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
LONG_MAX_TOKENS = 2000  # uncancelled, this would run for minutes on this machine


def decode_stats(http: httpx.Client, replica: str) -> dict:
    return http.get("/admin/stats").json()["replicas"][replica]


def settled_tokens(http: httpx.Client, replica: str) -> int:
    """The decode actor's tokens_generated once it stopped changing (bounded wait)."""
    samples: list[int] = []

    def stable() -> bool:
        samples.append(decode_stats(http, replica)["tokens_generated"])
        return len(samples) >= 3 and samples[-1] == samples[-2] == samples[-3]

    wait_for(stable, 120, "the decode actor to stop generating", interval_s=1.0)
    return samples[-1]


@pytest.mark.parametrize("how", ["openai", "httpx"])
def test_client_disconnect_cancels_the_generation(http, client, app_url, facts_session, how):
    replica = facts_session["replica"]
    before = settled_tokens(http, replica)
    assert decode_stats(http, replica)["active_streams"] == 0
    body = {"model": MODEL, "messages": user("Tell me a very long story."), "temperature": 0,
            "max_tokens": LONG_MAX_TOKENS, "stream": True, "session_id": facts_session["id"], "ignore_eos": True}
    if how == "openai":
        stream = client.chat.completions.create(**{k: v for k, v in body.items() if k not in ("session_id", "ignore_eos")},
                                                extra_body={"session_id": body["session_id"], "ignore_eos": True})
        received = 0
        for chunk in stream:
            received += bool(chunk.choices and chunk.choices[0].delta.content)
            if received == 3:
                break
        assert decode_stats(http, replica)["active_streams"] == 1
        stream.close()
    else:
        with httpx.Client(timeout=120) as own:  # its own connection, closed mid-stream
            with own.stream("POST", f"{app_url}/v1/chat/completions", json=body) as response:
                lines = response.iter_lines()
                content = [line for line, _ in zip(lines, range(6)) if line.startswith("data: ")]
                assert len(content) >= 3
                assert decode_stats(http, replica)["active_streams"] == 1
    wait_for(lambda: decode_stats(http, replica)["active_streams"] == 0, 300, "the stream to be cancelled")
    generated = settled_tokens(http, replica) - before
    assert 3 <= generated < LONG_MAX_TOKENS, generated  # stopped early: cancelled, not finished
    assert http.get("/health").status_code == 200


def test_metrics_follow_the_requests(app_url, http, client, facts_session):
    def ttft(kind: str) -> tuple[float, float]:
        return tuple(metric_values(app_url, f"kvfleet_time_to_first_token_seconds_{part}").get(f'{{kind="{kind}"}}', 0.0)
                     for part in ("count", "sum"))

    def tokens(kind: str) -> float:
        return metric_values(app_url, "kvfleet_generated_tokens_total").get(f'{{kind="{kind}"}}', 0.0)

    count0, sum0 = ttft("session")
    tokens0 = tokens("session")
    reply = client.chat.completions.create(model=MODEL, messages=user(QUESTIONS[0]), temperature=0, max_tokens=16,
                                           extra_body={"session_id": facts_session["id"]})
    assert tokens("session") - tokens0 == reply.usage.completion_tokens
    chunks = list(client.chat.completions.create(model=MODEL, messages=user(QUESTIONS[1]), temperature=0,
                                                 max_tokens=16, stream=True, stream_options={"include_usage": True},
                                                 extra_body={"session_id": facts_session["id"]}))
    assert tokens("session") - tokens0 == reply.usage.completion_tokens + chunks[-1].usage.completion_tokens
    count1, sum1 = ttft("session")
    assert count1 - count0 == 2
    # TTFT is measured from the request's arrival: it spans at least a control-plane lookup, two
    # actor calls and one model step (a value near 0 would mean it was taken after the first token)
    assert (sum1 - sum0) / 2 > 0.001
    client.chat.completions.create(model=MODEL, messages=user("Say hi."), temperature=0, max_tokens=4)
    assert ttft("plain")[0] >= 1 and tokens("plain") >= 4
    httpx.get(f"{app_url}/v1/sessions/sess_unknown", timeout=60)
    httpx.post(f"{app_url}/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "n": 99}, timeout=60)

    requests = metric_values(app_url, "kvfleet_requests_total")
    assert requests.get('{route="/v1/chat/completions",status="200"}', 0) >= 3, requests
    assert requests.get('{route="/v1/sessions/{session_id}",status="404"}', 0) >= 1, requests
    assert requests.get('{route="/v1/chat/completions",status="400"}', 0) >= 1, requests
    assert requests.get('{route="/v1/sessions",status="200"}', 0) >= 1, requests  # the fixture's create
    latency = metric_values(app_url, "kvfleet_request_seconds_count")
    assert latency.get('{route="/v1/chat/completions"}', 0) >= 3, latency

    sessions = metric_values(app_url, "kvfleet_sessions")
    assert sessions[f'{{replica="{facts_session["replica"]}"}}'] >= 1 and set(sessions) == {
        '{replica="replica-0"}', '{replica="replica-1"}'}
    held = metric_values(app_url, "kvfleet_kv_bytes_held")
    assert held[f'{{replica="{facts_session["replica"]}",tier="host"}}'] >= facts_session["bytes_stored"]
    budget = metric_values(app_url, "kvfleet_kv_budget_bytes")
    assert budget['{replica="replica-0",tier="host"}'] == 512 * 2**20  # tests/serving.py small_args
    assert metric_values(app_url, "kvfleet_sessions_loaded_total")[""] >= 1
    assert metric_values(app_url, "kvfleet_context_tokens_read_total")[""] >= facts_session["tokens_read"]
    assert metric_values(app_url, "kvfleet_active_streams") == {'{replica="replica-0"}': 0.0,
                                                                '{replica="replica-1"}': 0.0}


def test_metrics_text_is_prometheus(http):
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for family in ("kvfleet_requests_total counter", "kvfleet_time_to_first_token_seconds histogram",
                   "kvfleet_generated_tokens_total counter", "kvfleet_sessions gauge", "kvfleet_kv_bytes_held gauge"):
        assert f"# TYPE {family}" in response.text


@pytest.mark.parametrize("route", ["chat", "completions"])
def test_continuous_usage_stats_put_the_usage_so_far_on_every_chunk(client, route):
    """vLLM's ``stream_options.continuous_usage_stats`` (with ``include_usage``): every chunk carries
    the usage so far (completion tokens never decreasing), the last equals the non-streamed usage;
    without it only the final usage chunk has one."""
    args = dict(model=MODEL, max_tokens=6, temperature=0, n=2)
    if route == "chat":
        create, args["messages"] = client.chat.completions.create, user("Count to five.")
    else:
        create, args["prompt"] = client.completions.create, "Count to five:"
    whole = create(**args)
    chunks = list(create(**args, stream=True,
                         stream_options={"include_usage": True, "continuous_usage_stats": True}))
    assert all(c.usage is not None for c in chunks)
    counts = [c.usage.completion_tokens for c in chunks]
    assert counts == sorted(counts) and counts[0] <= 1  # chat opens with a role chunk (0 tokens)
    counted = ("prompt_tokens", "completion_tokens", "total_tokens")  # cached_tokens: the prefix cache's hits vary
    assert [getattr(chunks[-1].usage, k) for k in counted] == [getattr(whole.usage, k) for k in counted]
    assert {c.usage.prompt_tokens for c in chunks} == {whole.usage.prompt_tokens}
    plain = list(create(**args, stream=True, stream_options={"include_usage": True}))
    assert [c.usage is not None for c in plain] == [False] * (len(plain) - 1) + [True]
