"""OpenAI-format errors: ``{"error": {"message", "type", "code"}}`` with the right HTTP status.

Every exception that reaches the ingress goes through ``to_api_error``; known kvfleet errors map
to their status, anything else becomes a 500 with a generic message (the traceback is logged,
never sent). Ray wraps remote exceptions in a subclass of the original (``RayTaskError(cause)``),
so ``isinstance`` checks work across actor and deployment boundaries.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from ray.exceptions import GetTimeoutError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from control_plane import errors as cp_errors
from deployments.common.replica_errors import ActorsRestarting, MissingCache
from deployments.engine.engine import ContextTooLongError
from deployments.engine.model_loader import ModelLoadError
from deployments.engine.prompt import PromptError
from kvpool.errors import CapacityError, ChecksumError, KVFleetError, PressSpecError

log = logging.getLogger(__name__)


class APIError(KVFleetError):
    """An error raised by the API layer itself with an explicit status."""

    def __init__(self, status: int, message: str, code: str, type_: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers
        self.type = type_ or _TYPES.get(status, "server_error")


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable", 504: "timeout_error"}


@dataclass(frozen=True)
class _Rule:
    exc: type[BaseException]
    status: int
    code: str


def _rules() -> list[_Rule]:
    rules = [
        _Rule(PressSpecError, 422, "invalid_press"),
        _Rule(ContextTooLongError, 413, "context_length_exceeded"),
        _Rule(PromptError, 400, "invalid_prompt"),
        _Rule(CapacityError, 429, "kv_capacity_exceeded"),
        _Rule(ChecksumError, 500, "cache_corrupted"),
        _Rule(ModelLoadError, 503, "model_unavailable"),
    ]
    return [
        _Rule(cp_errors.UnknownSession, 404, "session_not_found"),
        _Rule(cp_errors.SessionNotReady, 409, "session_not_ready"),
        _Rule(cp_errors.NoReplicaAvailable, 503, "no_replica"),
        _Rule(cp_errors.UnknownAdminEvent, 404, "event_not_found"),
        _Rule(cp_errors.UnknownReplica, 404, "replica_not_found"),
        _Rule(cp_errors.InvalidTransition, 409, "invalid_state"),
        _Rule(cp_errors.InvalidMigration, 409, "invalid_migration"),  # conflicts with the fleet's state
        _Rule(MissingCache, 409, "session_not_ready"),
        _Rule(ActorsRestarting, 503, "replica_unavailable"),
        *rules,
    ]


_RULES = _rules()


def to_api_error(exc: BaseException) -> APIError:
    """Map any exception to an APIError (status, message, code, type)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ValidationError):
        return validation_error(exc.errors())  # 422 invalid_press when every error is inside ``press``
    for rule in _RULES:
        if isinstance(exc, rule.exc):
            return APIError(rule.status, _message(exc), rule.code, headers=_retry_after(exc))
    if isinstance(exc, BackPressureError):
        return APIError(429, "server is at capacity (request queue full), retry later", "over_capacity")
    if isinstance(exc, (TimeoutError, GetTimeoutError)):
        return APIError(504, "the request timed out", "timeout")
    if isinstance(exc, (RayActorError, DeploymentUnavailableError)):
        return APIError(503, "the replica serving this request is restarting; retry shortly", "replica_unavailable")
    if isinstance(exc, KVFleetError):
        return APIError(400, _message(exc), "invalid_request")
    log.exception("unexpected error", exc_info=exc)
    return APIError(500, "internal error; see the server log", "internal_error")


def _retry_after(exc: BaseException) -> dict[str, str] | None:
    """``Retry-After`` (whole seconds) when the error carries an estimate (SessionNotReady of a
    recovering session: control_plane.recovery_queue); Ray keeps it on the wrapped ``cause``."""
    seconds = getattr(exc, "retry_after_s", None) or getattr(getattr(exc, "cause", None), "retry_after_s", None)
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds else None  # never earlier than estimated


def _message(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if cause is not None and cause is not exc:
        return _message(cause)
    text = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    return text.splitlines()[0][:2000] if text else type(exc).__name__


def _error_text(err: dict) -> str:
    where = param_of(err.get("loc", ()))
    if err.get("type") == "extra_forbidden":
        return f"unsupported field {where!r}"
    return f"{where or 'body'}: {err.get('msg')}"


def param_of(loc: tuple) -> str:
    """OpenAI's ``param`` for a pydantic error location: ``("messages", 0, "content")`` ->
    ``messages[0].content``. Union member tags pydantic adds (``str``, ``list[str]``) and the
    FastAPI ``body`` prefix are dropped."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif (i == 0 and part == "body") or "[" in part or part in _TYPE_TAGS:
            continue
        else:
            out += f".{part}" if out else part
    return out


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list", "function-after", "function-before"})


def validation_error(errors: list[dict]) -> APIError:
    """A 400 for pydantic ``errors()``: the first error names ``param``; a field check that raised
    an error carrying its own ``param`` and ``code`` (deployments.ingress.chat.messages.InvalidField)
    speaks for itself."""
    first = errors[0] if errors else {}
    cause = (first.get("ctx") or {}).get("error")
    if cause is not None and getattr(cause, "param", None):
        return APIError(400, str(cause), getattr(cause, "code", "invalid_request"), param=cause.param)
    message = "; ".join(_error_text(err) for err in errors[:5]) or "invalid request"
    param = param_of(tuple(first.get("loc", ()))) or None
    if errors and all(param_of(tuple(err.get("loc", ()))).startswith("press") for err in errors):
        return APIError(422, message, "invalid_press", param=param)  # e.g. a ratio outside [0, 1)
    return APIError(400, message, "invalid_request", param=param)


request_validation_error = validation_error  # FastAPI's RequestValidationError.errors() have the same shape


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI error JSON, the body of every 4xx/5xx reply (``error_body`` builds it)."""

    error: ErrorDetail


def error_body(error: APIError) -> dict:
    """``{"error": {"message", "type", "code", "param"}}`` of ``error``."""
    detail = ErrorDetail(message=error.message, type=error.type, code=error.code, param=getattr(error, "param", None))
    return ErrorResponse(error=detail).model_dump()


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text} for status, text in (
        (400, "bad input"), (401, "missing or bad API key"), (403, "not an admin key"), (404, "unknown name"),
        (409, "not ready / conflicting state"), (413, "body or context too long"), (422, "bad press spec"),
        (429, "over capacity"), (503, "no replica available"))
}
"""``responses=`` for every route: the error replies it may give, all OpenAI error JSON."""
