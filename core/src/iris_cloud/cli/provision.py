"""``iris-cloud provision`` / ``deprovision``: groups the cloud providers fill in.

Each installed provider that can create an integrator-owned exchange adds a
subcommand named after its cloud through the ``iris_cloud_register_provisioners``
hook (``provision aws``, ``provision gcp``); with none installed the groups
say which packages bring them.
"""

from __future__ import annotations

import click

__all__ = ["register"]


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
