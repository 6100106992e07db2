"""The docs runner itself: a broken snippet fails, and says where."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_docs import run_doc

GOOD_PROFILE = """\
[profiles.p]
client_guid = "63E3C9EF-66AC-4154-B0C2-494515EB99A7"
orders = { url = "mem://orders", connection_string = { env = "X_SECRET" } }
"""


def doc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(text, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    return path


def run(tmp_path: Path, text: str) -> tuple[int, str]:
    path = doc(tmp_path, text)
    result = run_doc(path, tmp_path / "work", timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_a_working_document_passes(tmp_path: Path) -> None:
    code, out = run(
        tmp_path,
        "<!-- docs-test setup\nanswer = 42\n-->\n\n"
        "```python\nassert answer == 42\nfrom iris_cloud import open_broker\n"
        "broker = open_broker('mem://docs')\n```\n\n"
        f"```toml\n{GOOD_PROFILE}```\n\n"
        "```console\n$ iris-cloud validate --samples\nsome output\n"
        "$ uv run --no-dev iris-cloud providers\n```\n\n"
        "```text\nnot run at all\n```\n\n"
        "```bash\n# not run: needs an AWS account\niris-cloud provision aws x\n```\n",
    )
    assert code == 0, out
    assert "3 block(s) ran, 1 not run" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```\nplain\n```\n", "doc.md:1: a fence without a language"),
        ("\n```python\nx = 1\nundefined_name\n```\n", 'doc.md", line 4'),
        ("```toml\norders = { url = 'mem://o',\n  x = 1 }\n```\n", "not valid TOML"),
        (
            "```toml\n[profiles.p]\norders = 'nope://o'\n```\n",
            "doc.md:1: toml block failed",
        ),
        ("```console\n$ iris-cloud validate no-such-file.json\n```\n", "exited 2"),
        ("```bash\n# not run:\niris-cloud demo\n```\n", "needs a reason"),
        ("```bash\niris-cloud config show --profile $(cat x)\n```\n", "command substitution"),
        (
            "<!-- docs-test pytest\ndef test_x():\n    assert y == 2\n-->\n```python\ny = 1\n```\n",
            "exited 1",
        ),
    ],
    ids=[
        "no-language",
        "python",
        "toml-syntax",
        "toml-profile",
        "cli-exit",
        "no-reason",
        "subst",
        "pytest",
    ],
)
def test_a_broken_snippet_fails_naming_its_place(tmp_path: Path, text: str, expected: str) -> None:
    code, out = run(tmp_path, text)
    assert code == 1
    assert expected in out
