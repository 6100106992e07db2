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

    from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore
    from iris_cloud.ports import MessageBroker, ObjectStore

hookspec = pluggy.HookspecMarker("iris_cloud")
hookimpl = pluggy.HookimplMarker("iris_cloud")


@hookspec
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker] | str]:
    """Return the broker URL schemes this plugin serves, e.g. ``{"awssqs": SqsBroker}``.

    Each class opens an endpoint with ``cls.from_url(url, **options)``. A value
    may instead be an import path, ``"package.module:Class"``: the module is
    then imported only when a URL of that scheme is opened, so a process that
    uses one provider does not pay for importing every installed SDK.
    """


@hookspec
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore] | str]:
    """Return the object-store URL schemes this plugin serves, e.g. ``{"s3": S3Store}``.

    As for brokers, a value may be an import path ``"package.module:Class"``,
    imported when a URL of that scheme is first opened.
    """


@hookspec
def iris_cloud_async_broker_schemes() -> dict[str, type[AsyncMessageBroker] | str]:
    """Return the broker URL schemes this plugin serves with an async class.

    The async twin of :func:`iris_cloud_broker_schemes`, e.g.
    ``{"azuresb": "iris_cloud_azure.aio:AsyncServiceBusBroker"}``: each class is an
    :class:`iris_cloud.aio.AsyncMessageBroker` that :func:`iris_cloud.aio.open_broker`
    opens with ``cls.from_url(url, **options)``, taking the same URL and options as
    the sync class of that scheme. Declare it beside the sync one, as an import path
    so that the async SDK is imported only when used. A plugin without this hook
    serves its schemes to sync callers only; :func:`iris_cloud.aio.open_broker`
    then says so. :class:`iris_cloud.aio.ThreadedBroker` makes an async class of a
    sync one where the SDK has no async client.
    """


@hookspec
def iris_cloud_async_store_schemes() -> dict[str, type[AsyncObjectStore] | str]:
    """Return the object-store URL schemes this plugin serves with an async class.

    The async twin of :func:`iris_cloud_store_schemes`: each class is an
    :class:`iris_cloud.aio.AsyncObjectStore` taking the same URL and options as
    the sync class of that scheme (:class:`iris_cloud.aio.ThreadedStore` runs a
    sync store in threads).
    """


@hookspec
def iris_cloud_public_options() -> dict[str, frozenset[str]]:
    """Return, per URL scheme this plugin serves, the options that hold no secret.

    These names (options and URL query parameters alike) are the only ones
    whose values ``iris-cloud config show``, ``check`` and the reprs of
    endpoints and profiles print; every other option or query parameter of
    that scheme is shown as ``***``, whatever its name (``pwd``, ``auth``,
    ``sig``). A value that is a URL is printed with its password masked.
    List only what is safe to show; a scheme with no entry is fully masked.
    """


@hookspec
def iris_cloud_register_commands(cli: click.Group) -> None:
    """Add commands to the ``iris-cloud`` command group (``cli.add_command(...)``)."""


@hookspec
def iris_cloud_register_provisioners(provision: click.Group, deprovision: click.Group) -> None:
    """Add a cloud's ``provision`` and ``deprovision`` subcommands.

    ``iris-cloud provision aws NAME`` and ``iris-cloud deprovision aws NAME``
    are the AWS provider's: it calls ``provision.add_command(...)`` and
    ``deprovision.add_command(...)`` with commands named after its cloud. The
    shared pieces (plans, role tables, profile files) are in
    :mod:`iris_cloud.provisioning`.
    """
