"""Ingress: the Serve deployment that is the only HTTP entry. It holds the shared state every API
uses (config, auth, limits, handles to the control shell and the replicas) and composes one
route class per API:

| API | routes | folder |
|---|---|---|
| OpenAI Chat Completions | ``POST /v1/chat/completions`` | ``chat/`` |
| OpenAI (legacy) Completions | ``POST /v1/completions`` | ``completions/`` |
| OpenAI Responses | ``/v1/responses`` | ``responses/`` |
| sessions | ``/v1/sessions`` | ``sessions/`` |
| discovery | ``/health``, ``/v1/models``, ``/v1/presses`` | ``models/`` |
| admin (LMCache-controller style) | ``/admin/...`` | ``admin/`` |
| Prometheus | ``GET /metrics`` | ``observability/`` |
| vLLM tokenizer | ``POST /tokenize``, ``POST /detokenize``, ``GET /version`` | ``tokenizer/`` |

Every route turns any failure into OpenAI error JSON (ingress/errors.py); nothing raises past
here, so the server stays up and never shows a stack trace.

(No ``from __future__ import annotations`` here: Serve's class-based views re-create the route
functions, and FastAPI must see real types such as ``Request``, not strings.)
"""

import logging
from typing import Any

from ray import serve

from deployments.common.detached import DetachedTasks
from deployments.config import AppConfig
from deployments.engine.presses import install_press_policy
from deployments.ingress.admin.routes import AdminRoutes
from deployments.ingress.auth.authenticator import Authenticator
from deployments.ingress.chat.routes import ChatRoutes
from deployments.ingress.completions.routes import CompletionRoutes
from deployments.ingress.errors import APIError
from deployments.ingress.fastapi_app import api
from deployments.ingress.guards.body_limit import BodyLimitMiddleware
from deployments.ingress.guards.context_limit import ContextLimit
from deployments.ingress.guards.limits import RequestLimits
from deployments.ingress.models.routes import ModelRoutes
from deployments.ingress.observability.metrics import IngressMetrics, RequestMetricsMiddleware
from deployments.ingress.observability.routes import MetricsRoutes
from deployments.ingress.plain_router import PlainRouter
from deployments.ingress.responses.routes import ResponseRoutes
from deployments.ingress.responses.stored_routes import StoredResponseRoutes
from deployments.ingress.sessions.routes import SessionRoutes
from deployments.ingress.tokenizer.routes import TokenizerRoutes

log = logging.getLogger(__name__)


@serve.ingress(api)
class Ingress(ChatRoutes, CompletionRoutes, ResponseRoutes, StoredResponseRoutes, SessionRoutes, ModelRoutes,
              AdminRoutes, MetricsRoutes, TokenizerRoutes):
    def __init__(self, config: dict, control: Any, replicas: dict[str, Any]):
        self.config = AppConfig.model_validate(config)
        self.control = control
        self.replicas = replicas
        self.auth = Authenticator(self.config.security)
        self.metrics = IngressMetrics()
        RequestMetricsMiddleware.metrics = self.metrics  # counts every request (fastapi_app.py)
        self.model_name = self.config.model.name
        self.context_limit = ContextLimit(self.config.model, self.config.limits.max_context_tokens)
        self.vocab_size = self.context_limit.vocab_size  # token ids in requests are checked against it
        self.loads = DetachedTasks()  # session loads that outlive their request
        self.limits = RequestLimits(self.config.limits)
        BodyLimitMiddleware.max_body_bytes = self.config.limits.max_body_bytes
        install_press_policy(self.config.presses)  # allowlisted custom presses, imported now or never
        self.router = PlainRouter(self.config.plain, list(self.replicas), self.model_name)  # plain_router.py

    # ---- helpers -----------------------------------------------------------------------------
    def _check_model(self, model: str) -> None:
        """404 ``model_not_found`` unless ``model`` is the served model's name."""
        if model != self.model_name:
            raise APIError(404, f"model {model!r} is not served here; available: {self.model_name!r}",
                           "model_not_found", param="model")
