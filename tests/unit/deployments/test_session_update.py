"""PATCH /v1/sessions/{id} bodies (deployments.ingress.sessions.schema.SessionUpdateRequest), no server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.ingress.errors import APIError
from deployments.ingress.sessions.schema import SessionUpdateRequest


def changes(body: dict, last_used_s: float = 1000.0, now_s: float = 1100.0) -> dict:
    return SessionUpdateRequest.model_validate(body).changes(last_used_s, now_s)


def test_ttl_expire_time_and_pinned():
    assert changes({"ttl_s": 60}) == {"ttl_s": 60}
    assert changes({"ttl_s": None}) == {"ttl_s": None}                      # never expires
    assert changes({"expire_time": 1500}) == {"ttl_s": 500}                  # relative to last use
    assert changes({"expire_time": "1970-01-01T00:25:00Z"}) == {"ttl_s": 500}
    assert changes({"expire_time": "1970-01-01T01:25:00+01:00"}) == {"ttl_s": 500}
    assert changes({"expire_time": "1970-01-01T00:25:00"}) == {"ttl_s": 500}  # no zone: UTC
    assert changes({"pinned": True, "ttl_s": 5}) == {"pinned": True, "ttl_s": 5}


@pytest.mark.parametrize("body", [{}, {"ttl_s": 1, "expire_time": 2000}, {"pinned": None}, {"expire_time": None},
                                  {"ttl_s": 0}, {"expire_time": "soon"}, {"owner": "bob"}])
def test_bad_bodies(body):
    with pytest.raises(ValidationError):
        SessionUpdateRequest.model_validate(body)


def test_expire_time_must_be_in_the_future():
    with pytest.raises(APIError) as error:
        changes({"expire_time": 1050})
    assert error.value.status == 400
