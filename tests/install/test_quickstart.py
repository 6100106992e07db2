"""The README's quick start: two set-up commands, the demo without the dev toolchain."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("mypy", "ruff", "pytest", "tox", "moto", "hypothesis")


def quick_start_commands() -> list[str]:
    """The command lines of the README's "Quick start" block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_two_commands_and_ci_runs_the_second_verbatim() -> None:
    demo, tests = quick_start_commands()
    assert "iris-cloud demo" in demo
    assert tests.endswith("uv run tox -p auto")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests in ci


def test_the_demo_command_installs_no_dev_toolchain(tmp_path: Path) -> None:
    demo = quick_start_commands()[0]
    _, uv_part = demo.split(" && ", 1)  # "python3 -m pip install uv" is done: uv is here
    assert uv_part.startswith("uv run ")
    clone = tmp_path / "clone"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = ROOT / name.decode()
        if source.is_file():
            target = clone / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # Not the tox env's venv: uv makes the clone's own .venv, as on a fresh machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    args = [sys.executable, "-m", "uv", *uv_part.split()[1:], "--orders", "2"]
    result = subprocess.run(
        args, cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "done in" in result.stdout
    site = (clone / ".venv").glob("lib/*/site-packages/*.dist-info")
    installed = {p.name.split("-")[0].lower() for p in site}
    assert {"iris_cloud", "iris_cloud_simulator"} <= installed
    assert not installed & set(DEV_ONLY), sorted(installed & set(DEV_ONLY))
    assert len(installed) < 40, sorted(installed)
