"""The model in an editor: snake_case construction type-checks in mypy --strict and pyright.

``snippets/snake_case.py`` is what the docs tell users to write and must give
zero errors; ``snippets/mistakes.py`` is the negative control: every line
marked ``# expect: WORD`` must be reported (and nothing else), so a checker
that silently accepted everything would fail here. mypy runs twice: with the
repository's configuration (pydantic's mypy plugin, ``[tool.pydantic-mypy]``)
and with a user's plain ``strict = True`` (pydantic's ``dataclass_transform``,
as pyright reads it). Run by the ``lint`` env, which pins pyright.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
GOOD = HERE / "snippets" / "snake_case.py"
MISTAKES = HERE / "snippets" / "mistakes.py"

Finding = tuple[int, str]
"""(line, message) of one reported error."""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _mypy(config: Path | None) -> Callable[[Path, Path], list[Finding]]:
    def check(file: Path, tmp: Path) -> list[Finding]:
        if config is None:
            plain = tmp / "mypy.ini"
            plain.write_text("[mypy]\nstrict = True\n")
            options = ["--config-file", str(plain)]
        else:
            options = ["--config-file", str(config), "--strict"]
        proc = _run(["mypy", *options, "--cache-dir", str(tmp / "cache"), str(file)], ROOT)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        # mypy names the file as given or relative to the working directory.
        pattern = re.compile(rf"^(?:.*[/\\])?{re.escape(file.name)}:(\d+): error: (.*)$")
        found = [re.match(pattern, line) for line in proc.stdout.splitlines()]
        return [(int(m[1]), m[2]) for m in found if m]

    return check


def _pyright(file: Path, tmp: Path) -> list[Finding]:
    proc = _run(["pyright", "--outputjson", "--pythonpath", sys.executable, str(file)], ROOT)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    return [
        (d["range"]["start"]["line"] + 1, d["message"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]


CHECKERS: dict[str, Callable[[Path, Path], list[Finding]]] = {
    "mypy-plugin": _mypy(ROOT / "pyproject.toml"),
    "mypy-plain": _mypy(None),
    "pyright": _pyright,
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("checker", sorted(CHECKERS))
def test_snake_case_construction_type_checks(checker: str, tmp_path: Path) -> None:
    assert CHECKERS[checker](GOOD, tmp_path) == []


@pytest.mark.timeout(180)
@pytest.mark.parametrize("checker", sorted(CHECKERS))
def test_a_wrong_keyword_or_an_unnarrowed_optional_is_reported(
    checker: str, tmp_path: Path
) -> None:
    expected = {
        number: m[1]
        for number, line in enumerate(MISTAKES.read_text().splitlines(), start=1)
        if (m := re.search(r"# expect: (\w+)$", line))
    }
    assert len(expected) == 3
    reported = CHECKERS[checker](MISTAKES, tmp_path)
    assert {line for line, _ in reported} == set(expected), reported
    for line, word in expected.items():
        assert any(word in message for at, message in reported if at == line), (line, reported)
