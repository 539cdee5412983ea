"""Issue 14 item 4 on the live app: every row of the chat validation matrix
(tests/regression/chat_validation_matrix.py) gets its status, and errors name the field in ``param``."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import assert_openai_error
from tests.regression.chat_validation_matrix import ROWS, Row

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_matrix_row(http, row: Row):
    response = http.post("/v1/chat/completions", json=row.body())
    if row.status == 200:
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["role"] == "assistant"
        return
    error = assert_openai_error(response, row.status, row.code)
    assert error["param"] == row.param, error


def test_the_session_api_checks_messages_the_same_way(http):
    from tests.serving import MODEL

    response = http.post("/v1/sessions", json={"model": MODEL, "messages": [{"role": "user"}]})
    assert assert_openai_error(response, 400)["param"] == "messages[0].content"
