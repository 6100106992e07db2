"""Every snippet in README.md, core/README.md and docs/*.md runs (rules: docs/CONTRIBUTING.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("snippets.py")
DOCS = [ROOT / "README.md", ROOT / "core" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def run_doc(path: Path, workdir: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``path``'s blocks in a child process, in ``workdir``, with no user config."""
    home = workdir / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRIS_CLOUD_")}
    if "IRIS_CLOUD_REQUIRE_EMULATORS" in os.environ:
        env["IRIS_CLOUD_REQUIRE_EMULATORS"] = os.environ["IRIS_CLOUD_REQUIRE_EMULATORS"]
    env.update(HOME=str(home), COLUMNS="120", IRIS_CLOUD_DOCS_ROOT=str(ROOT))
    return subprocess.run(
        [sys.executable, str(RUNNER), str(path)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_snippet_runs(path: Path, tmp_path: Path) -> None:
    result = run_doc(path, tmp_path)
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
