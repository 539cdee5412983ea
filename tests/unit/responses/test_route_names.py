"""The Ingress composes one route class per API by inheritance: a helper of the Responses routes
must not share a name with another mixin's (the first class in the MRO would silently win)."""

from __future__ import annotations

from deployments.ingress.deployment import Ingress
from deployments.ingress.responses.routes import ResponseRoutes


def test_responses_helpers_are_not_shadowed():
    ingress = Ingress.func_or_class if hasattr(Ingress, "func_or_class") else Ingress
    for name, value in vars(ResponseRoutes).items():
        if callable(value) or isinstance(value, (staticmethod, property)):
            assert getattr(ingress, name) is getattr(ResponseRoutes, name), name
