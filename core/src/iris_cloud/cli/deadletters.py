"""``iris-cloud deadletters list|show|replay|purge ROLE``: the dead-letter queue of a role.

Built on :mod:`iris_cloud.deadletters`, so it works on every provider. Every
field shown is the sender's or derived from what it sent (ids, subjects,
reasons naming its fields): printed as plain text, control characters
escaped; ``--json`` output is JSON with every non-ASCII character escaped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from iris_cloud.cli.common import console, err_console, markup, plain, print_rows
from iris_cloud.cli.workflow import _errors, _load, _profile_options
from iris_cloud.config import BROKER_ROLES
from iris_cloud.deadletters import DEFAULT_WAIT, SweepReport, browse, purge, replay, select
from iris_cloud.errors import ConfigurationError
from iris_cloud.messages import Message
from iris_cloud.ports import MessageBroker

__all__ = ["register"]

_role = click.argument("role", type=click.Choice(BROKER_ROLES))
_wait = click.option(
    "--wait",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_WAIT,
    show_default=True,
    help="Seconds a receive waits before the dead-letter queue counts as empty.",
)


class _Progress:
    """A line on stderr every few seconds of a long sweep (never for a short one)."""

    every = 2.0

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.next = time.monotonic() + self.every

    def __call__(self, report: SweepReport) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every
            err_console.print(
                f"... {report.seen} dead letters looked at, {report.done} {self.verb}"
            )


def _open(role: str, profile_name: str | None, config_file: Path | None) -> MessageBroker:
    return _load(profile_name, config_file).open_broker(role)


def _browse(
    role: str,
    profile_name: str | None,
    config_file: Path | None,
    wait: float,
    limit: int | None = None,
) -> SweepReport:
    with _open(role, profile_name, config_file) as broker:
        return _sweep_errors(
            role, browse, broker, limit=limit, wait=wait, progress=_Progress("shown")
        )


def _refused(role: str, exc: ConfigurationError) -> ConfigurationError:
    """Where the broker cannot reach a dead-letter queue: say so for this command."""
    return ConfigurationError(f"the {role} broker has no dead-letter queue to read here: {exc}")


def _summary(msg: Message) -> dict[str, Any]:
    return {
        "message_id": msg.message_id,
        "enqueued_at": msg.enqueued_at.isoformat() if msg.enqueued_at else None,
        "delivery_count": msg.delivery_count,
        "reason": msg.dead_letter_reason,
        "description": msg.dead_letter_description,
    }


def _detail(msg: Message) -> dict[str, Any]:
    return {
        **_summary(msg),
        "correlation_id": msg.correlation_id,
        "subject": msg.subject,
        "content_type": msg.content_type,
        "properties": dict(msg.properties),
        "body_bytes": len(msg.body),
    }


def _json(value: Any) -> None:
    # ensure_ascii: control, bidi and every other non-ASCII character escaped.
    click.echo(json.dumps(value, ensure_ascii=True, indent=2))


def _sweep_errors(role: str, fn: Any, *args: Any, **kwargs: Any) -> SweepReport:
    try:
        report: SweepReport = fn(*args, **kwargs)
    except ConfigurationError as exc:
        raise _refused(role, exc) from None
    return report


@click.group("deadletters")
def deadletters_group() -> None:
    """Look at, replay or purge the dead-letter queue of a broker role.

    Dead letters are received under peek-lock and given back (nothing is
    lost by looking), so looking counts a delivery on the dead-letter queue.
    """


@deadletters_group.command("list")
@_role
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@_wait
@_profile_options
@_errors
def list_command(
    role: str,
    limit: int | None,
    as_json: bool,
    wait: float,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """List the dead letters of ROLE: id, enqueued time, deliveries, reason (no bodies)."""
    report = _browse(role, profile_name, config_file, wait, limit)
    if as_json:
        _json([_summary(m) for m in report.messages])
        return
    if not report.messages:
        err_console.print(f"the {role} dead-letter queue is empty")
        return
    rows = [
        [
            plain(m.message_id),
            Text(m.enqueued_at.strftime("%Y-%m-%d %H:%M:%S") if m.enqueued_at else "-"),
            Text(str(m.delivery_count)),
            plain(m.dead_letter_reason or "-"),
            plain(m.dead_letter_description or ""),
        ]
        for m in report.messages
    ]
    print_rows(
        f"{role} dead letters",
        ["id", "enqueued (UTC)", "deliveries", "reason", "description"],
        rows,
    )
    err_console.print(f"{len(rows)} dead letter(s)")


@deadletters_group.command("show")
@_role
@click.argument("message_id")
@click.option("--body", is_flag=True, help="Print the body too (it may hold patient data).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@_wait
@_profile_options
@_errors
def show_command(role: str, message_id: str, body: bool, as_json: bool, **where: Any) -> None:
    """Show one dead letter of ROLE: its headers and properties; --body adds the body."""
    report = _browse(role, where["profile_name"], where["config_file"], where["wait"])
    found = next((m for m in report.messages if m.message_id == message_id), None)
    if found is None:
        err_console.print(markup("[red]no dead letter with id[/] {}", message_id))
        raise SystemExit(1)
    detail = _detail(found)
    if as_json:
        if body:
            detail["body"] = found.body.decode("utf-8", "backslashreplace")
        _json(detail)
        return
    properties = detail.pop("properties")
    for key, value in detail.items():
        console.print(Text.assemble(f"{key}: ", plain("-" if value is None else value, None)))
    for key, value in properties.items():
        console.print(Text.assemble("property ", plain(key), ": ", plain(value, None)))
    if body:
        console.print(Text("body:"))
        console.print(_body_text(found.body))


def _body_text(body: bytes) -> Text:
    """A body for the terminal: JSON re-indented with every non-ASCII escaped, else one line."""
    try:
        return Text(json.dumps(json.loads(body), ensure_ascii=True, indent=2))
    except ValueError:
        return plain(body.decode("utf-8", "backslashreplace"), None)


@deadletters_group.command("replay")
@_role
@click.option("--id", "ids", multiple=True, metavar="ID", help="Replay this message (repeatable).")
@click.option("--reason", help="Replay every dead letter with this dead-letter reason.")
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter.")
@_wait
@_profile_options
@_errors
def replay_command(
    role: str,
    ids: tuple[str, ...],
    reason: str | None,
    everything: bool,
    wait: float,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Send dead letters back to ROLE's queue, removing each only after its send succeeded.

    A crash (or Ctrl-C) part-way loses nothing: a message sent but not yet
    removed is replayed again next time, a duplicate with the same message id.
    """
    if everything == bool(ids or reason):
        raise click.UsageError("give --id ID (repeatable), --reason R, or --all")
    which = select(ids, reason, everything)
    with _open(role, profile_name, config_file) as broker:
        report = _sweep_errors(
            role, replay, broker, which, wait=wait, progress=_Progress("replayed")
        )
    err_console.print(f"replayed {report.done} of {report.seen} dead letter(s)")
    _report_left(report, "they were sent back, so replaying them again sends duplicates")
    if ids and report.selected < len(set(ids)):
        err_console.print(f"{len(set(ids)) - report.selected} id(s) not found")
        raise SystemExit(1)


def _report_left(report: SweepReport, what: str) -> None:
    if report.left:
        err_console.print(
            f"{report.left} dead letter(s) still in the dead-letter queue: their lock ran "
            f"out before they were removed; {what}"
        )
        raise SystemExit(1)


@deadletters_group.command("purge")
@_role
@click.option(
    "--id", "ids", multiple=True, metavar="ID", help="Purge only this message (repeatable)."
)
@click.option("--reason", help="Purge only the dead letters with this dead-letter reason.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_wait
@_profile_options
@_errors
def purge_command(
    role: str,
    ids: tuple[str, ...],
    reason: str | None,
    yes: bool,
    wait: float,
    profile_name: str | None,
    config_file: Path | None,
) -> None:
    """Delete the dead letters of ROLE, every one unless --id / --reason; prints how many.

    Asks for confirmation first unless --yes.
    """
    profile = _load(profile_name, config_file)
    which = select(ids, reason) if ids or reason else None
    if not yes:
        what = "the selected dead letters" if which else "every dead letter"
        click.confirm(
            f"Delete {what} of {role} in profile {profile.name!r}? This cannot be undone",
            abort=True,
            err=True,
        )
    with profile.open_broker(role) as broker:
        report = _sweep_errors(role, purge, broker, which, wait=wait, progress=_Progress("purged"))
    err_console.print(f"purged {report.done} dead letter(s)")
    _report_left(report, "purge again to remove them")


def register(cli: click.Group) -> None:
    """Add the ``deadletters`` command group to ``cli``."""
    cli.add_command(deadletters_group)
