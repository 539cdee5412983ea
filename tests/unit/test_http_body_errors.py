"""deployments.ingress.fastapi_app's handler for unreadable bodies, on a bare FastAPI app (no Ray): a body not
sent as JSON is a 415 that says which header to send; a bad JSON body is a 400 naming the field."""

from __future__ import annotations

from fastapi import Body, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from deployments.ingress.fastapi_app import _validation_error

app = FastAPI()
app.add_exception_handler(RequestValidationError, _validation_error)


@app.post("/echo")
async def echo(body: dict = Body(...)) -> dict:
    return body


client = TestClient(app)
BODY = '{"model": "m"}'


def test_json_content_type_is_read():
    assert client.post("/echo", content=BODY, headers={"content-type": "application/json"}).json() == {"model": "m"}
    assert client.post("/echo", content=BODY, headers={"content-type": "application/merge-patch+json"}).status_code == 200


def test_curl_d_default_content_type_is_a_415_naming_the_header():
    reply = client.post("/echo", content=BODY, headers={"content-type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 415
    error = reply.json()["error"]
    assert error["code"] == "unsupported_media_type" and "-H 'Content-Type: application/json'" in error["message"]


def test_a_body_without_content_type_is_a_415():
    assert client.post("/echo", content=BODY).status_code == 415


def test_no_body_at_all_is_a_400_not_a_415():
    reply = client.post("/echo")
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"


def test_malformed_json_is_a_400():
    reply = client.post("/echo", content="{nope", headers={"content-type": "application/json"})
    assert reply.status_code == 400
