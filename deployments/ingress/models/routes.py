"""Discovery routes, mixed into the Ingress class: ``GET /health``, ``/v1/presses``, ``/v1/models``
and ``/v1/models/{id}`` (OpenAI ``models.list`` / ``models.retrieve``).

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any

from deployments.engine.presses import describe_presses
from deployments.ingress.fastapi_app import api
from deployments.ingress.models.replies import Health, ModelList, PressList


class ModelRoutes:
    """Needs ``self.config``, ``self.replicas``, ``self.context_limit``, ``self.model_name`` and ``self._check_model`` from the Ingress."""

    config: Any
    replicas: dict[str, Any]
    model_name: str

    @api.get("/health", responses={200: {"model": Health}})
    async def health(self) -> dict:
        return {"status": "ok", "model": self.model_name, "replicas": list(self.replicas)}

    @api.api_route("/ping", methods=["GET", "POST"], responses={200: {"model": Health}})
    async def ping(self) -> dict:
        """vLLM's (and SageMaker's) liveness route: the same answer as ``/health``."""
        return await self.health()

    @api.get("/v1/presses", responses={200: {"model": PressList}})
    async def presses(self) -> dict:
        return {"object": "list", "data": describe_presses(), "default": self.config.default_press.model_dump()}

    def _model_card(self) -> dict:
        """vLLM's ``ModelCard``: ``root`` is what the served model loads from (a hub id or a local
        directory holding its tokenizer: clients such as ``vllm bench serve`` load it), ``parent``
        the base model of an adapter (none here)."""
        return {"id": self.model_name, "object": "model", "created": 0, "owned_by": "kvfleet",
                "root": self.context_limit.model_path, "parent": None,
                "max_model_len": self.config.limits.max_context_tokens}

    @api.get("/v1/models", responses={200: {"model": ModelList}})
    async def models(self) -> dict:
        return {"object": "list", "data": [self._model_card()]}

    @api.get("/v1/models/{model:path}")
    async def model(self, model: str) -> dict:
        """OpenAI ``models.retrieve``: the card of a served model; 404 for any other id."""
        self._check_model(model)
        return self._model_card()
