"""The simulator's iris-cloud plugin: adds ``iris-cloud simulate`` and ``iris-cloud demo``.

Kept light: the plugin manager imports this module whenever it loads
plugins, so the simulator itself is imported only when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud import hookimpl

if TYPE_CHECKING:
    import click

__all__ = ["iris_cloud_register_commands"]


@hookimpl
def iris_cloud_register_commands(cli: click.Group) -> None:
    """Add ``simulate`` and ``demo`` to the ``iris-cloud`` command group."""
    from iris_cloud_simulator.cli import simulate_command
    from iris_cloud_simulator.demo import demo_command

    cli.add_command(simulate_command)
    cli.add_command(demo_command)
