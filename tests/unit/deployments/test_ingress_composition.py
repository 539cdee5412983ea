"""The Ingress composes one route class per API by inheritance (deployments/ingress/deployment.py):
no two route classes may define the same attribute name, or the first class in the MRO would
silently win (a Responses helper once shadowed by a chat helper made every request a 500)."""

from __future__ import annotations

import collections

from deployments.ingress.deployment import Ingress


def _route_classes() -> list[type]:
    ingress = Ingress.func_or_class if hasattr(Ingress, "func_or_class") else Ingress
    return [cls for cls in ingress.__mro__[1:] if cls.__module__.startswith("deployments.ingress.")]


def test_every_api_folder_contributes_a_route_class():
    names = {cls.__module__ for cls in _route_classes()}
    for api in ("chat", "completions", "responses", "sessions", "models", "admin", "observability", "tokenizer"):
        assert f"deployments.ingress.{api}.routes" in names, api


def test_no_two_route_classes_share_a_name():
    owners: dict[str, list[str]] = collections.defaultdict(list)
    for cls in _route_classes():
        for name in vars(cls):
            if not (name.startswith("__") and name.endswith("__")) and name not in cls.__annotations__:
                owners[name].append(cls.__name__)
    assert {name: classes for name, classes in owners.items() if len(classes) > 1} == {}
