"""The hooks a provider or extension implements.

A plugin is a module or object with functions named like these and decorated
with :data:`iris_cloud.hookimpl`; installed packages announce it through the
``iris_cloud`` entry-point group. Every hook here is documented: a test fails
otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from iris_cloud.ports import MessageBroker, ObjectStore

hookspec = pluggy.HookspecMarker("iris_cloud")
hookimpl = pluggy.HookimplMarker("iris_cloud")


@hookspec
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """Return the broker URL schemes this plugin serves, e.g. ``{"awssqs": SqsBroker}``.

    Each class opens an endpoint with ``cls.from_url(url, **options)``.
    """


@hookspec
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """Return the object-store URL schemes this plugin serves, e.g. ``{"s3": S3Store}``."""


@hookspec
def iris_cloud_register_commands(cli: click.Group) -> None:
    """Add commands to the ``iris-cloud`` command group (``cli.add_command(...)``)."""
