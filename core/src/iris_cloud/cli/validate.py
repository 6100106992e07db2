"""``iris-cloud validate`` and ``iris-cloud schema``: check messages, export JSON Schemas.

Error output names field paths and error kinds only; input values (patient
names, dates of birth, MRNs) are never printed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from iris_cloud.errors import FieldError, ValidationError
from iris_cloud.model import (
    SCHEMA_TYPES,
    detect_kind,
    json_schema,
    message_class,
    sample_files,
    schema_file_name,
)
from iris_cloud.untrusted import clean

__all__ = ["Outcome", "register", "schema_command", "validate_command", "validate_document"]


@dataclass(frozen=True)
class Outcome:
    """The verdict on one document: its detected kind or the fields that failed."""

    source: str
    kind: str | None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Whether the document parsed."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``validate --json``."""
        return {
            "source": self.source,
            "valid": self.valid,
            "kind": self.kind,
            "errors": [{"path": e.path, "type": e.type, "message": e.message} for e in self.errors],
        }


def validate_document(source: str, data: bytes) -> Outcome:
    """Detect and validate one JSON document read from ``source`` (a name for messages).

    ``kind`` is set whenever the type could be told, also for an invalid document.
    """
    try:
        kind = detect_kind(data)
    except ValidationError as exc:
        return Outcome(source, None, exc.errors)
    try:
        message_class(kind).from_json(data)
    except ValidationError as exc:
        return Outcome(source, kind, exc.errors)
    return Outcome(source, kind)


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _print_outcome(outcome: Outcome) -> None:
    # Paths can hold the document's own keys: escaped like any sender text.
    source = clean(outcome.source, None)
    if outcome.valid:
        click.echo(f"{source}: " + click.style("OK", fg="green") + f" {clean(outcome.kind)}")
        return
    kind = f" {clean(outcome.kind)}" if outcome.kind else ""
    click.echo(f"{source}: " + click.style("INVALID", fg="red", bold=True) + kind)
    for error in outcome.errors:
        click.echo(f"  {clean(error.path or '<root>')}: {clean(error.message)} [{error.type}]")


@click.command("validate")
@click.argument(
    "files",
    nargs=-1,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    metavar="FILE|- ...",
)
@click.option(
    "--samples", is_flag=True, help="Also validate the sample messages bundled with iris-cloud."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of verdicts.")
def validate_command(files: tuple[str, ...], samples: bool, as_json: bool) -> None:
    """Detect the type of each IRIS JSON message and validate it.

    Prints "OK <type>" per valid document (order, result, grading or
    event:<ResultObjectType>), or every failing field path. "-" reads one
    document from standard input. Exits with status 1 if any document is
    invalid. Input values are never printed.
    """
    if not files and not samples:
        raise click.UsageError("give at least one FILE, '-' for standard input, or --samples")
    outcomes = [validate_document(name, _read(name)) for name in files]
    if samples:
        outcomes += [validate_document(f"samples/{p.name}", p.read_bytes()) for p in sample_files()]
    if as_json:
        click.echo(json.dumps([o.to_dict() for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            _print_outcome(outcome)
    if not all(o.valid for o in outcomes):
        sys.exit(1)


def _schema_type(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Accept a key of SCHEMA_TYPES, a message class name, or ``all``."""
    if value.casefold() == "all":
        return "all"
    try:
        schema_file_name(value)
    except KeyError:
        raise click.BadParameter(
            f"unknown message type {value!r}; choose from all, {', '.join(SCHEMA_TYPES)}"
        ) from None
    return value


@click.command("schema")
@click.argument("type_", metavar="TYPE", callback=_schema_type)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write <type>.schema.json files into this directory instead of printing.",
)
def schema_command(type_: str, out: Path | None) -> None:
    """Print or write the JSON Schema of an IRIS message type.

    TYPE is order, result, grading, event:<ResultObjectType> (e.g.
    event:OrderGradedEvent), event:generic, a class name such as OrderRequest,
    or "all".
    """
    kinds = list(SCHEMA_TYPES) if type_ == "all" else [type_]
    if out is None:
        if type_ == "all":
            document: dict[str, Any] = {kind: json_schema(kind) for kind in kinds}
        else:
            document = json_schema(type_)
        click.echo(json.dumps(document, indent=2))
        return
    out.mkdir(parents=True, exist_ok=True)
    for kind in kinds:
        target = out / schema_file_name(kind)
        target.write_text(json.dumps(json_schema(kind), indent=2) + "\n", encoding="utf-8")
        click.echo(str(target))


def register(cli: click.Group) -> None:
    """Add ``validate`` and ``schema`` to the ``iris-cloud`` command group."""
    cli.add_command(validate_command)
    cli.add_command(schema_command)
