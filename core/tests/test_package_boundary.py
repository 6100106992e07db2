"""Core stands alone: it imports nothing from the providers or contrib distributions."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "src" / "iris_cloud"
OTHERS = (
    "iris_cloud_aws",
    "iris_cloud_azure",
    "iris_cloud_gcp",
    "iris_cloud_simulator",
    "iris_cloud_emulators",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_imports_nothing_from_other_distributions() -> None:
    found = {
        f"{path.relative_to(CORE)}: {name}"
        for path in CORE.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in OTHERS
    }
    assert not found
