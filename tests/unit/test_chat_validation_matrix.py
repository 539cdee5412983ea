"""Issue 14 item 4 without Ray: every row of the validation matrix through the request model and
the OpenAI error mapping (the e2e twin, tests/e2e/test_request_validation.py, sends each row to
the live app)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.ingress.errors import error_body, to_api_error
from deployments.ingress.chat.schema import ChatCompletionRequest
from tests.regression.chat_validation_matrix import ROWS, Row


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_matrix_row(row: Row):
    try:
        ChatCompletionRequest.model_validate(row.body())
    except ValidationError as exc:
        assert row.status == 400, f"rejected a request the matrix accepts: {exc}"
        error = error_body(to_api_error(exc))["error"]
        assert (error["param"], error["code"], error["type"]) == (row.param, row.code, "invalid_request_error"), error
        assert error["message"]
        return
    # accepted by the request model: valid, or refused later by the ingress (unknown model)
    assert row.status == 200 or row.code == "model_not_found", f"{row.id} was accepted"
