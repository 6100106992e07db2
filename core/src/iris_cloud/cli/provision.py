"""``iris-cloud provision`` / ``deprovision``: groups the cloud providers fill in.

Each installed provider that can create an integrator-owned exchange adds a
subcommand named after its cloud through the ``iris_cloud_register_provisioners``
hook (``provision aws``, ``provision gcp``); with none installed the groups
say which packages bring them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from iris_cloud.provisioning import Plan

__all__ = [
    "plan_options",
    "register",
    "removal_options",
    "report",
    "report_removed",
    "show_plan",
    "with_options",
]

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def provision() -> None:
    """Create an integrator-owned exchange (queues, buckets, two least-privilege identities).

    Subcommands are added by the installed providers: iris-cloud[aws] brings
    ``provision aws``, iris-cloud[gcp] ``provision gcp``. Azure is not
    covered yet (docs/azure.md lists what to create by hand).
    """


@click.group()
def deprovision() -> None:
    """Remove what ``provision`` created (asks first; keeps non-empty buckets unless --force)."""


def register(cli: click.Group) -> None:
    """Add both groups to ``cli`` and let providers add their clouds."""
    from iris_cloud.plugins import get_plugin_manager

    cli.add_command(provision)
    cli.add_command(deprovision)
    get_plugin_manager().hook.iris_cloud_register_provisioners(
        provision=provision, deprovision=deprovision
    )


# -- pieces every cloud's subcommands share ---------------------------------------------


def with_options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply click ``options`` to a command, first one first in ``--help``."""

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def plan_options(formats: Sequence[str], out_help: str) -> Callable[[F], F]:
    """``--dry-run``, ``--format`` (``formats``), ``--out`` and ``--client-guid``."""
    return with_options(
        click.option("--dry-run", is_flag=True, help="Print the plan, create nothing."),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(list(formats)),
            default=formats[0],
            show_default=True,
            help="How to print the plan (--dry-run).",
        ),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("."),
            show_default=True,
            help=out_help,
        ),
        click.option(
            "--client-guid", help="The integrator's ClientGuid, written to both profiles."
        ),
    )


removal_options = with_options(
    click.option("--force", is_flag=True, help="Also empty and remove buckets holding objects."),
    click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
)
"""``--force`` and ``--yes`` of every ``deprovision`` subcommand."""


def show_plan(plan: Plan, fmt: str) -> None:
    """Print ``plan`` as JSON (``fmt == "json"``) or as readable tables."""
    from iris_cloud.cli.common import console
    from iris_cloud.provisioning import print_plan

    if fmt == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        print_plan(plan, console)


def report(name: str, done: Sequence[str], written: Sequence[Path]) -> None:
    """Say how many resources are in place and which files were written."""
    from iris_cloud.cli.common import console

    console.print(f"exchange {name}: {len(done)} resources in place")
    for path in written:
        console.print(f"  wrote {path}")


def report_removed(name: str, removed: Sequence[str], kept: Sequence[str]) -> None:
    """Say what ``deprovision`` removed and which buckets it kept."""
    from iris_cloud.cli.common import console

    console.print(f"exchange {name}: removed {len(removed)}")
    for item in kept:
        console.print(f"  kept {item}: it holds objects (--force removes it)")
