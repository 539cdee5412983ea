"""Reply models of the discovery routes (``/v1/models``, ``/v1/presses``, ``/health``), as OpenAI's
``Model`` object and vLLM's model card show them.

(No ``from __future__ import annotations``: FastAPI must see real types.)
"""

from typing import Any

from deployments.common.schema_base import OpenModel


class Model(OpenModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(OpenModel):
    object: str = "list"
    data: list[Model]


class PressList(OpenModel):
    object: str = "list"
    data: list[dict[str, Any]]
    default: dict[str, Any]


class Health(OpenModel):
    status: str
    model: str
    replicas: list[str]
