"""The model reference (``docs/model-reference.md``), generated from the classes.

Every class, its fields with their wire names and types, and every enum code
with its meaning (the member's docstring). Regenerate after changing a model::

    python -m iris_cloud.model.reference docs/model-reference.md

``--check`` compares instead of writing and exits 1 when the file is stale.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import sys
import textwrap
import types
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import StringConstraints
from pydantic.fields import FieldInfo

from iris_cloud import model
from iris_cloud.model import common, event, grading, order, result
from iris_cloud.model.common import (
    MODEL_VERSION,
    IrisModel,
    _GuidText,
    _OneOf,
    _Tolerant,
    _TolerantEnum,
    _VersionText,
    wire_names,
)

__all__ = ["REGENERATE", "enum_member_docs", "main", "render"]

REGENERATE = "uv run python -m iris_cloud.model.reference docs/model-reference.md"
"""The command that rewrites the checked-in reference."""

_SECTIONS: tuple[tuple[str, types.ModuleType], ...] = (
    ("OrderRequest (orders queue)", order),
    ("Events (events queue)", event),
    ("OrderResult (results queue)", result),
    ("GradingSubmission (test environments)", grading),
    ("Shared objects", common),
)

_TOLERANT_NAMES = {"datetime_format": "date-time", "date_format": "date", "int_format": "int"}
_PLAIN_NAMES: dict[Any, str] = {
    str: "str",
    int: "int",
    bool: "bool",
    float: "float",
    datetime: "date-time",
    date: "date",
    Any: "any",
}


def _anchor(name: str) -> str:
    return f"[{name}](#{name.lower()})"


def _public(module: types.ModuleType, kind: type) -> list[Any]:
    """The public classes of ``kind`` defined in ``module``, in source order."""
    return [
        obj
        for name, obj in vars(module).items()
        if name in model.__all__
        and isinstance(obj, type)
        and issubclass(obj, kind)
        and obj.__module__ == module.__name__
    ]


def _describe(tp: Any, metadata: Sequence[Any] = ()) -> str:
    """A reader's name for a field type: ``date-time``, ``list of [Image](#image)``, ..."""
    for marker in metadata:
        if isinstance(marker, _TolerantEnum):
            return f"{_anchor(marker.enum.__name__)} code"
        if isinstance(marker, _Tolerant):
            return _TOLERANT_NAMES[marker.error_type]
        if isinstance(marker, _GuidText):
            return "GUID"
        if isinstance(marker, _VersionText):
            return "version"
        if isinstance(marker, StringConstraints) and tp is str:
            return "str (not empty)"
        if isinstance(marker, _OneOf):
            break
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _describe(args[0], args[1:])
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"list of {_describe(args[0])}"
    if origin is Literal:
        return " or ".join(f'`"{value}"`' for value in args)
    if isinstance(tp, type) and issubclass(tp, IrisModel):
        return _anchor(tp.__name__)
    return _PLAIN_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _notes(info: FieldInfo, wire: list[str]) -> str:
    notes = []
    if wire[1:]:
        notes.append("also read from " + ", ".join(f"`{name}`" for name in wire[1:]))
    if not info.repr:
        notes.append("hidden in repr")
    return "; ".join(notes)


def _markdown(text: str) -> str:
    """A docstring's reStructuredText roles and literals as Markdown code spans."""
    text = re.sub(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _docstring(obj: Any) -> str:
    return _markdown(inspect.getdoc(obj) or "")


def _model_section(cls: type[IrisModel]) -> Iterator[str]:
    yield f"### {cls.__name__}"
    yield ""
    yield _docstring(cls)
    bases = [
        b.__name__ for b in cls.__bases__ if b.__name__ in model.__all__ and b is not IrisModel
    ]
    if bases:
        yield ""
        yield "Extends " + ", ".join(_anchor(b) for b in bases) + "."
    yield ""
    if not cls.model_fields:
        yield "No fields of its own: every field is kept as sent."
        yield ""
        return
    yield "| field | wire name | type | required | notes |"
    yield "| --- | --- | --- | --- | --- |"
    for name, info in cls.model_fields.items():
        wire = wire_names(info)
        kind = _describe(info.annotation, info.metadata)
        required = "yes" if info.is_required() else ""
        yield f"| `{name}` | `{wire[0]}` | {kind} | {required} | {_notes(info, wire)} |"
    yield ""


def enum_member_docs(enum: type[StrEnum]) -> dict[str, str]:
    """The docstring under each member of ``enum``, by member name (from its source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(enum)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, following in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.targets[0].id] = _markdown(" ".join(following.value.value.split()))
    return docs


def _enum_section(enum: type[StrEnum]) -> Iterator[str]:
    yield f"### {enum.__name__}"
    yield ""
    yield _docstring(enum)
    yield ""
    yield "| code | member | meaning |"
    yield "| --- | --- | --- |"
    docs = enum_member_docs(enum)
    for member in enum:
        yield f"| `{member.value}` | `{member.name}` | {docs.get(member.name, '')} |"
    yield ""


def render() -> str:
    """The whole reference as Markdown."""
    lines = [
        f"# IRIS object model {MODEL_VERSION}: reference",
        "",
        "<!-- Generated from iris_cloud.model: do not edit; change the models' docstrings and run",
        f"     {REGENERATE} -->",
        "",
        "Every class of `iris_cloud.model`, its fields and every code, generated from the",
        f"classes (`{REGENERATE}`).",
        "How to parse, build and write them: [model.md](model.md).",
        "",
        "* **field**: the attribute and the constructor keyword (snake_case);",
        "  **wire name**: the JSON key written, and read unless the notes name others.",
        "* Every field not marked required may be absent or `null` (Python `None`);",
        "  unknown fields are kept at every level.",
        "* **code** types hold the enum member for a known code and the string for one",
        "  this model does not know yet; `date` and `date-time` read ISO 8601 and US",
        '  `M/D/YYYY` forms; `""` in a code, date, date-time, GUID or int field reads',
        "  as unset.",
        "* **hidden in repr**: patient data or free text, shown as `***` by `repr()`.",
        "",
    ]
    enums = _public(common, StrEnum)
    for title, module in _SECTIONS:
        lines += [f"## {title}", ""]
        for cls in _public(module, IrisModel):
            if cls is not IrisModel:
                lines += _model_section(cls)
    lines += ["## Codes", ""]
    for enum in enums:
        lines += _enum_section(enum)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference to PATH (``-``: standard output), or ``--check`` it."""
    parser = argparse.ArgumentParser(
        prog="python -m iris_cloud.model.reference", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("path", nargs="?", default="-", help="where to write (default: stdout)")
    parser.add_argument("--check", action="store_true", help="exit 1 if PATH is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        target = Path(args.path)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            print(f"{args.path} is not current: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    if args.path == "-":
        sys.stdout.write(text)
    else:
        Path(args.path).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
