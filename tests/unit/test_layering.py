"""One-way layers, no import circles (ARCHITECTURE.md: kvpool <- transfer <- control_plane <- deployments).

control_plane's own purity test (no Ray at all) lives in tests/unit/control_plane/test_cp_layering.py.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.layering import cycles, external_imports_of, imports_of, modules

LAYERS = ("kvpool", "transfer", "control_plane", "deployments")
TRANSFER_LEAVES = {"transfer.states", "transfer.errors", "transfer.faults", "transfer.expectation", "transfer.ticket"}


def _package(module: str) -> str:
    return module.split(".")[0]


ROLES = ("deployments.ingress", "deployments.serving", "deployments.control")
"""The processes of a deployment (ARCHITECTURE.md): the HTTP ingress, the serving replica and its
actors, the control shell. They talk through Serve handles, never through imports."""
SHARED = ("deployments.common", "deployments.engine", "deployments.litellm_router")
"""Folders below the roles: they import no role (litellm_router runs in the LiteLLM proxy process)."""


def _in(module: str, folder: str) -> bool:
    return module == folder or module.startswith(folder + ".")


@pytest.mark.parametrize("prefix", ["kvpool", "transfer", "control_plane", "deployments", "deployments.engine",
                                    *ROLES, *SHARED, "benchmarks"])
def test_no_import_circles(prefix):
    assert cycles(prefix) == []


def test_no_import_circles_across_packages():
    found = cycles()
    graph_edges = {(_package(m), _package(i)) for m in modules() for i in imports_of(m)}
    upward = sorted((a, b) for a, b in graph_edges
                    if a in LAYERS and b in LAYERS and LAYERS.index(b) > LAYERS.index(a))
    assert found == [] and upward == [], "a lower layer imports a higher one"


def test_no_installed_package_imports_benchmarks_or_tests():
    offenders = {m: sorted(i for i in imports_of(m) if _package(i) in ("benchmarks", "tests"))
                 for m in modules() if _package(m) in LAYERS}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_transfer_base_is_a_leaf_of_interfaces_and_data():
    """base.py imports only modules that never import it back: orchestration lives in protocol.py."""
    def of_transfer(module: str) -> set[str]:
        return {i for i in imports_of(module) if _package(i) == "transfer"}

    assert of_transfer("transfer.base") <= TRANSFER_LEAVES
    for leaf in TRANSFER_LEAVES:
        assert of_transfer(leaf) <= TRANSFER_LEAVES, leaf


def test_transfer_never_imports_ray_serve():
    offenders = [m for m in modules() if _package(m) in ("kvpool", "transfer", "control_plane")
                 and re.search(r"^\s*(from ray import serve|from ray\.serve|import ray\.serve)", modules()[m].read_text(),
                               re.MULTILINE)]
    assert offenders == []


def test_engine_runs_without_ray_and_imports_nothing_else_of_deployments():
    engine = [m for m in modules() if m == "deployments.engine" or m.startswith("deployments.engine.")]
    assert len(engine) > 3
    assert [m for m in engine if "ray" in external_imports_of(m)] == []
    outside = {m: sorted(i for i in imports_of(m) if _package(i) == "deployments"
                         and not (i == "deployments.engine" or i.startswith("deployments.engine.")))
               for m in engine}
    assert {m: i for m, i in outside.items() if i} == {}


def role_crossings() -> dict[str, list[str]]:
    """Module -> the modules of another role (or, for a shared folder, of any role) it imports."""
    out: dict[str, list[str]] = {}
    for module in modules():
        own = next((r for r in (*ROLES, *SHARED) if _in(module, r)), None)
        if own is None:
            continue
        bad = sorted(i for i in imports_of(module) if any(_in(i, r) for r in ROLES if r != own))
        if bad:
            out[module] = bad
    return out


def test_roles_never_import_one_another():
    """ingress, serving and control import only config, common, engine and the lower packages;
    common, engine and litellm_router import no role. Type-checking imports count."""
    assert role_crossings() == {}


def test_every_role_folder_has_modules():
    """The rule above would pass vacuously if a role folder were renamed: each must exist and hold code."""
    for folder in (*ROLES, *SHARED):
        assert len([m for m in modules() if _in(m, folder)]) >= 3, folder
