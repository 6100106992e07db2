"""``iris-cloud providers``: what is installed, with versions, schemes and capabilities."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from rich.table import Table

from iris_cloud import plugins
from iris_cloud.cli.common import console, markup

__all__ = ["register"]


@click.command("providers")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def providers_command(as_json: bool) -> None:
    """List loaded providers, their versions, URL schemes and capabilities."""
    infos = plugins.providers()
    if as_json:
        out = [
            {
                "name": i.name,
                "distribution": i.distribution,
                "version": i.version,
                "brokers": {s: asdict(c.capabilities) for s, c in i.broker_schemes.items()},
                "stores": {s: asdict(c.capabilities) for s, c in i.store_schemes.items()},
            }
            for i in infos
        ]
        out.extend(
            {"name": name, "error": reason} for name, reason in sorted(plugins.failed.items())
        )
        click.echo(json.dumps(out, indent=2))
        return
    table = Table(title="iris-cloud providers")
    for col in ("provider", "distribution", "version", "broker schemes", "store schemes"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.name,
            i.distribution,
            i.version,
            ", ".join(f"{s}://" for s in i.broker_schemes) or "-",
            ", ".join(f"{s}://" for s in i.store_schemes) or "-",
        )
    console.print(table)
    caps = Table(title="capabilities")
    for col in (
        "scheme",
        "max msg bytes",
        "dead-letter",
        "delayed retry",
        "lock renewal",
        "cond. create",
        "signed URLs",
        "native watch",
    ):
        caps.add_column(col)
    yes = {True: "yes", False: "no"}
    for i in infos:
        for s, b in i.broker_schemes.items():
            c = b.capabilities
            caps.add_row(
                f"{s}://",
                str(c.max_message_bytes),
                yes[c.native_dead_letter],
                yes[c.delayed_retry],
                yes[c.lock_renewal],
                "",
                "",
                "",
            )
        for s, st in i.store_schemes.items():
            c = st.capabilities
            caps.add_row(
                f"{s}://",
                "",
                "",
                "",
                "",
                yes[c.conditional_create],
                yes[c.signed_urls],
                yes[c.native_watch],
            )
    console.print(caps)
    for name, reason in sorted(plugins.failed.items()):
        console.print(markup("[red]not loaded[/red] {}: {}", name, reason))


def register(cli: click.Group) -> None:
    """Add ``providers`` to ``cli``."""
    cli.add_command(providers_command)
