"""Package boundaries: core imports nothing from the other distributions, and no
distribution's modules import each other in a circle (lazy and TYPE_CHECKING
imports included: a circle is a circle whether Python trips over it or not)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = {
    "iris_cloud": REPO / "core" / "src",
    "iris_cloud_aws": REPO / "providers" / "aws" / "src",
    "iris_cloud_azure": REPO / "providers" / "azure" / "src",
    "iris_cloud_gcp": REPO / "providers" / "gcp" / "src",
    "iris_cloud_simulator": REPO / "contrib" / "simulator" / "src",
    "iris_cloud_emulators": REPO / "contrib" / "emulators" / "src",
}


def modules(package: str) -> dict[str, Path]:
    root = SOURCES[package]
    found = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(path: Path) -> Iterator[str]:
    """Every module name an import statement in ``path`` may load, anywhere in it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph(package: str) -> dict[str, set[str]]:
    known = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges = set()
        for target in imported(path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A module's own package __init__ runs before it anyway: not an edge.
            if target and target != name and not name.startswith(target + "."):
                edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_imports_nothing_from_other_distributions() -> None:
    others = set(SOURCES) - {"iris_cloud"}
    found = {
        f"{path.relative_to(REPO)}: {name}"
        for path in modules("iris_cloud").values()
        for name in imported(path)
        if name.split(".")[0] in others
    }
    assert not found


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_no_import_circles(package: str) -> None:
    assert circles(import_graph(package)) == []


def test_a_circle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
