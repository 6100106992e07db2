"""Run every fenced block of a Markdown file, the way a reader would use it.

``python tests/docs/snippets.py FILE.md`` runs the blocks of one file in
document order, in the current directory (the test gives each file a fresh
one), and exits non-zero naming the first block that failed. The rules are
in ``docs/CONTRIBUTING.md``; in short:

* every fence names its language; ``text`` (and any other language not
  below) is shown, not run;
* ``python`` blocks run in one namespace per file;
* ``toml`` blocks parse, and each profile they define loads with
  :func:`iris_cloud.config.load_profile`, its ``{ env = "..." }`` references
  set to dummy values;
* ``console`` / ``bash`` / ``sh`` / ``shell`` blocks: every ``iris-cloud``
  command (also as ``uv run ... iris-cloud``) runs and must exit 0; other
  programs are not run;
* a block whose first line is ``# not run: REASON`` is skipped, and says why
  where the reader sees it;
* ``<!-- docs-test setup`` ... ``-->`` holds hidden Python that runs where
  it stands (placeholders, files, a simulator playing IRIS);
* ``<!-- docs-test pytest [ARGS]`` ... ``-->`` before a ``python`` block
  runs that block, with the comment's code appended, as a pytest module.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Block", "Directive", "main", "parse"]

PYTHON = {"python", "py", "python3"}
TOML = {"toml"}
SHELL = {"console", "bash", "sh", "shell"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(
    r"^\s*<!--\s*docs-test\s+(?P<kind>setup|pytest)\b(?P<args>[^\n]*?)\s*(?P<end>-->)?\s*$"
)
_NOT_RUN = re.compile(r"^#\s*not run\b\s*:?\s*(?P<reason>.*)$")


@dataclass
class Directive:
    """A hidden ``<!-- docs-test ... -->`` comment."""

    kind: str
    """``setup`` (run where it stands) or ``pytest`` (applies to the next block)."""
    args: str
    code: str
    line: int
    """1-based line of the comment's first code line."""


@dataclass
class Block:
    """One fenced block."""

    lang: str
    code: str
    line: int
    """1-based line of the block's first code line."""
    pytest: Directive | None = None

    @property
    def not_run(self) -> str | None:
        """The reason given on a ``# not run: REASON`` first line, if any."""
        first = next((ln for ln in self.code.splitlines() if ln.strip()), "")
        m = _NOT_RUN.match(first.strip())
        return m.group("reason").strip() if m else None


@dataclass
class Document:
    path: Path
    steps: list[Block | Directive] = field(default_factory=list)


class SnippetError(Exception):
    """A block that did not do what the document says it does."""


def parse(path: Path) -> Document:
    """The blocks and hidden directives of ``path``, in document order."""
    lines = path.read_text(encoding="utf-8").split("\n")
    doc = Document(path)
    pending: Directive | None = None
    i = 0
    while i < len(lines):
        directive = _DIRECTIVE.match(lines[i])
        fence = _FENCE.match(lines[i])
        if directive:
            start = i
            body: list[str] = []
            if directive.group("end") is None:
                i += 1
                while i < len(lines) and lines[i].strip() != "-->":
                    body.append(lines[i])
                    i += 1
                if i == len(lines):
                    raise SnippetError(f"{path}:{start + 1}: docs-test comment never closed (-->)")
            d = Directive(
                directive.group("kind"), directive.group("args").strip(), "\n".join(body), start + 2
            )
            if d.kind == "setup":
                doc.steps.append(d)
            else:
                pending = d
            i += 1
            continue
        if fence:
            indent, marker = fence.group("indent"), fence.group("fence")
            lang = (
                fence.group("info").strip().split(maxsplit=1)[0]
                if fence.group("info").strip()
                else ""
            )
            start = i
            body = []
            i += 1
            closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}\s*$")
            while i < len(lines) and not closing.match(lines[i]):
                line = lines[i]
                body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
                i += 1
            if i == len(lines):
                raise SnippetError(f"{path}:{start + 1}: code fence never closed")
            if not lang:
                raise SnippetError(
                    f"{path}:{start + 1}: a fence without a language; name it "
                    "(python, toml, console, bash, or text for output and listings)"
                )
            block = Block(lang.lower(), "\n".join(body), start + 2)
            if pending is not None:
                if block.lang not in PYTHON:
                    raise SnippetError(
                        f"{path}:{pending.line - 1}: docs-test pytest must precede a python block"
                    )
                block.pytest, pending = pending, None
            doc.steps.append(block)
            i += 1
            continue
        i += 1
    if pending is not None:
        raise SnippetError(
            f"{path}:{pending.line - 1}: docs-test pytest with no python block after it"
        )
    return doc


def _padded(code: str, line: int) -> str:
    # Blank lines in front make tracebacks point at the Markdown file's own lines.
    return "\n" * (line - 1) + code + "\n"


# -- toml -----------------------------------------------------------------------


def _env_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            yield value["env"]
        for v in value.values():
            yield from _env_refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _env_refs(v)


def _file_refs(value: Any) -> bool:
    if isinstance(value, dict):
        return ("file" in value and set(value) == {"file"}) or any(map(_file_refs, value.values()))
    return False


def run_toml(block: Block, path: Path) -> None:
    from iris_cloud.config import ROLES, load_profile

    try:
        doc = tomllib.loads(block.code)
    except tomllib.TOMLDecodeError as exc:
        raise SnippetError(f"not valid TOML: {exc}") from None
    names = list(doc.get("profiles", {}))
    if any(key in ROLES or key == "client_guid" for key in doc):
        names.append("default")
    if not names:
        raise SnippetError("a toml block defines no profile ([profiles.NAME] or top-level roles)")
    for ref in _env_refs(doc):
        os.environ.setdefault(ref, f"dummy-{ref.lower()}")
    config = Path(f"docs-block-{block.line}.toml")
    config.write_text(block.code, encoding="utf-8")
    for name in names:
        profile = load_profile(name, config_file=config)
        table = doc if name == "default" else doc["profiles"][name]
        for role in profile.roles():
            # Secrets in files (`{ file = "/run/secrets/..." }`) exist only where the
            # doc's reader deploys; env references are set above and resolved here.
            if not _file_refs(table.get(role)):
                profile.endpoint(role).resolved_options(f"profiles.{name}.{role}")


# -- shell ----------------------------------------------------------------------


def _shell_commands(block: Block) -> Iterator[tuple[int, str]]:
    """(line, command) of every command line; ``console`` blocks mark them with ``$``."""
    lines = block.code.split("\n")
    prompt = block.lang == "console"
    i = 0
    while i < len(lines):
        line, start = lines[i], i
        i += 1
        text = line.strip()
        if prompt:
            if not text.startswith("$ "):
                continue
            text = text[2:]
        if not text or text.startswith("#"):
            continue
        while text.endswith("\\") and i < len(lines):
            text = text[:-1] + " " + lines[i].strip()
            i += 1
        yield block.line + start, text


_UV_OPTIONS_WITH_VALUE = {"--with", "--extra", "--package", "--python", "--group", "-p"}


def _iris_cloud_argv(words: list[str]) -> list[str] | None:
    """The ``iris-cloud`` arguments of one simple command, or None for another program."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if words[:2] == ["uv", "run"]:
        words = words[2:]
        while words and words[0].startswith("-"):
            words = words[2:] if words[0] in _UV_OPTIONS_WITH_VALUE else words[1:]
    if words and words[0] == "iris-cloud":
        return words[1:]
    return None


def _simple_commands(command: str) -> Iterator[list[str]]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        if token in {";", "&&", "||", "|", "&"}:
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def run_iris_cloud(argv: list[str]) -> int:
    """Run ``iris-cloud ARGV`` in this process (mem:// endpoints are shared with the blocks)."""
    from iris_cloud.cli import main as cli

    try:
        cli.main(args=argv, prog_name="iris-cloud", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def run_shell(block: Block) -> None:
    for line, command in _shell_commands(block):
        substituted = "$(" in command or "`" in command
        if substituted and any(
            _iris_cloud_argv(w) is not None for w in _simple_commands(command.replace("$(", " "))
        ):
            raise SnippetError(f"line {line}: command substitution in an iris-cloud command")
        for words in _simple_commands(command):
            argv = _iris_cloud_argv(words)
            if argv is None:
                continue
            print(f"$ iris-cloud {shlex.join(argv)}   ({line})", flush=True)
            code = run_iris_cloud(argv)
            if code != 0:
                raise SnippetError(f"line {line}: `iris-cloud {shlex.join(argv)}` exited {code}")


# -- python ---------------------------------------------------------------------


def run_python(code: str, line: int, path: Path, namespace: dict[str, Any]) -> None:
    exec(compile(_padded(code, line), str(path), "exec"), namespace)


def run_pytest(block: Block, path: Path) -> None:
    assert block.pytest is not None
    module = Path(f"test_docs_block_{block.line}.py")
    module.write_text(
        _padded(block.code, block.line) + "\n" + block.pytest.code + "\n", encoding="utf-8"
    )
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        ".",
        str(module),
    ]
    args += shlex.split(block.pytest.args)
    result = subprocess.run(args, check=False)
    if result.returncode != 0:
        raise SnippetError(f"pytest on the block exited {result.returncode} (output above)")


# -- the file -------------------------------------------------------------------


def run_document(path: Path) -> int:
    """Run every step of ``path``; 0 when all passed, 1 after the first failure."""
    try:
        doc = parse(path)
    except SnippetError as exc:
        print(exc, file=sys.stderr)
        return 1
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    ran = skipped = 0
    for step in doc.steps:
        where = f"{path}:{step.line - 1}"
        try:
            if isinstance(step, Directive):
                run_python(step.code, step.line, path, namespace)
                continue
            if step.lang not in PYTHON | TOML | SHELL:
                continue
            if step.not_run is not None:
                if not step.not_run:
                    raise SnippetError("`# not run:` needs a reason the reader can see")
                skipped += 1
                continue
            if step.lang in TOML:
                run_toml(step, path)
            elif step.lang in SHELL:
                run_shell(step)
            elif step.pytest is not None:
                run_pytest(step, path)
            else:
                run_python(step.code, step.line, path, namespace)
            ran += 1
        except SnippetError as exc:
            print(
                f"{where}: {getattr(step, 'lang', 'docs-test setup')} block failed: {exc}",
                file=sys.stderr,
            )
            return 1
        except BaseException:
            kind = step.lang if isinstance(step, Block) else "docs-test setup"
            print(f"{where}: {kind} block failed:", file=sys.stderr)
            traceback.print_exc()
            return 1
    print(f"{path}: {ran} block(s) ran, {skipped} not run (marked)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: snippets.py FILE.md", file=sys.stderr)
        return 2
    return run_document(Path(args[0]).resolve())


if __name__ == "__main__":
    sys.exit(main())
