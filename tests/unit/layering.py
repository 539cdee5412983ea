"""The static import graph of the repository's packages, for layering tests.

Every ``import``/``from ... import`` in a module counts, including those inside functions (an
import circle held apart only by a function-level import is still a circle: it just fails later,
at run time, in whichever order the modules happen to load) and those under ``if TYPE_CHECKING:``
(a type-checking import is a dependency all the same: the circle it closes only waits for the
next tool that evaluates annotations).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("kvpool", "transfer", "control_plane", "deployments", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of PACKAGES: dotted name -> file."""
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ours that importing ``name`` loads last (a name inside a module -> that module)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Modules of ours that ``module`` imports anywhere in its source (top level or in functions)."""
    path = modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
            if any(f"{base}.{alias.name}" not in modules() for alias in node.names):
                targets.append(base)  # a name defined in ``base`` itself, not a submodule of it
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t is not None)
    found.discard(module)
    return found


def external_imports_of(module: str) -> set[str]:
    """Top-level names of every module ``module`` imports (``ray.serve`` -> ``ray``)."""
    tree = ast.parse(modules()[module].read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def cycles(prefix: str = "") -> list[list[str]]:
    """Import circles among the modules under ``prefix`` (all of them for "") (each as a list of modules, first repeated
    at the end). Package ``__init__`` modules only re-export, so edges into them count too."""
    nodes = {m for m in modules() if not prefix or m == prefix or m.startswith(prefix + ".")}
    graph = {m: sorted(imports_of(m) & nodes) for m in nodes}
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(nodes):
        if node not in state:
            visit(node)
    return found
