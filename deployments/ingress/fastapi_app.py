"""The FastAPI app behind the ingress, and the handlers that turn every error into OpenAI JSON.

Kept apart from ingress.py so route groups in other modules (admin_routes.py) can register on the
same app. (No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray.exceptions import RayActorError
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployments.ingress.guards.body_limit import BodyLimitMiddleware
from deployments.ingress.errors import APIError, error_body, to_api_error, validation_error
from deployments.ingress.observability.metrics import RequestMetricsMiddleware
from kvpool.errors import KVFleetError

api = FastAPI(title="kvfleet", description="OpenAI-compatible serving with compressed, session-scoped KV caches")
api.add_middleware(RequestMetricsMiddleware)
api.add_middleware(BodyLimitMiddleware)  # outermost: an oversized body is refused before anything reads it


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if request.method in ("POST", "PUT", "PATCH") and not _is_json(content_type) and (content_type or has_body):
        # FastAPI (strict_content_type, its default) parses a body as JSON only under a JSON
        # Content-Type; `curl -d` sends form-urlencoded. Say so instead of "Input should be a
        # valid dictionary" (docs/api-exactness.md says why this stays strict).
        return error_response(APIError(
            415, f"the request body must be JSON sent with the header 'Content-Type: application/json' "
                 f"(got {content_type!r}; with curl add -H 'Content-Type: application/json')",
            "unsupported_media_type", "invalid_request_error"))
    return error_response(validation_error(errors))


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown route (404), wrong method (405) ...: OpenAI error JSON too, not Starlette's ``detail``."""
    codes = {404: "not_found", 405: "method_not_allowed"}
    return error_response(APIError(exc.status_code, str(exc.detail), codes.get(exc.status_code, "invalid_request")))


@api.exception_handler(Exception)
async def _any_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(to_api_error(exc))


# Starlette re-raises an exception after the catch-all ``Exception`` handler has answered, so
# every expected error would also be logged by Serve as a failed request (and counted as a 500 by
# RequestMetricsMiddleware); a handler registered for the class answers without re-raising. (Serve
# registers its own plain-text handlers for BackPressureError and DeploymentUnavailableError at
# start-up, which win over any registered here: the ingress converts those where it awaits.)
for _expected in (KVFleetError, ValidationError, TimeoutError, RayActorError):
    api.add_exception_handler(_expected, _any_error)


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status, headers=getattr(error, "headers", None))


