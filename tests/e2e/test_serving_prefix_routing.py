"""Plain requests go to the replica holding their stored compressed prefix (shared 2-replica app).
Regression for issue 17: one ~230-token prompt sent four times used to report ``cached_tokens``
0, 0, 216, 216 (round robin: each replica prefilled it once); now only the first send misses."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import metric_values, user
from tests.serving import MODEL

pytestmark = pytest.mark.e2e
MEMO = ("Routing memo. The warehouse in Ghent receives pallets on Mondays; the one in Turin on Thursdays. "
        "Invoices above 10,000 euros need two signatures. The audit is scheduled for the last week of June. ") * 3


def cached(client, messages: list[dict]) -> int:
    reply = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=4)
    return reply.usage.prompt_tokens_details.cached_tokens


def test_the_same_prompt_hits_from_its_second_send(client):
    counts = [cached(client, user(MEMO)) for _ in range(4)]
    assert counts[0] == 0 and counts[1] > 150 and counts[1:] == [counts[1]] * 3, counts


def test_other_questions_on_one_document_reuse_its_prefix(client, app_url):
    doc = [{"role": "system", "content": MEMO.replace("Routing memo.", "Second routing memo.")}]
    counts = [cached(client, doc + user(q)) for q in ("When is the audit?", "Where do pallets go on Mondays?",
                                                       "Who signs large invoices?")]
    assert counts[0] == 0 and all(c > 150 for c in counts[1:]), counts
    routed = metric_values(app_url, "kvfleet_control_plane")
    assert any("plain_routed_prefix" in label and value >= 2 for label, value in routed.items()), routed
