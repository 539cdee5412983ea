"""Typed errors of the kvfleet LiteLLM router. Each carries the HTTP ``status_code`` LiteLLM and
its proxy report to the client, and a message that says what to do."""

from __future__ import annotations


class KvfleetRouterError(Exception):
    """Base class. ``status_code`` is what the client sees (LiteLLM's proxy reads this attribute)."""

    status_code: int = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnknownSessionError(KvfleetRouterError):
    """No deployment of the model group holds this session and the router has no record of it."""

    status_code = 404


class SessionLostError(KvfleetRouterError):
    """The deployment holding the session is down and the session cannot be rebuilt elsewhere."""

    status_code = 503


class NoDeploymentError(KvfleetRouterError):
    """No healthy kvfleet deployment serves the requested model group."""

    status_code = 503


class DeploymentRequestError(KvfleetRouterError):
    """A kvfleet deployment answered a sessions-API call with an error (its status is kept)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


class RouterConfigError(KvfleetRouterError, ValueError):
    """The LiteLLM config (model_list / kvfleet_router) is unusable; the message names the field."""

    status_code = 500


class InvalidListingError(KvfleetRouterError):
    """A bad sessions-listing parameter (e.g. an ``after`` cursor the router does not know)."""

    status_code = 400
