"""The iris-cloud plugin of this package: ``awssqs://`` brokers and ``s3://`` stores.

Registered through the ``iris_cloud`` entry-point group (``aws``), so
``iris_cloud.open_broker("awssqs://...")`` and ``open_store("s3://...")``
find these classes once the package is installed.

The classes are named by import path, so loading the plugin (every CLI start,
every ``open_broker``) does not import the SDK; that happens when a URL of
the scheme is first opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud import hookimpl

if TYPE_CHECKING:
    import click

__all__ = [
    "iris_cloud_async_broker_schemes",
    "iris_cloud_async_store_schemes",
    "iris_cloud_broker_schemes",
    "iris_cloud_public_options",
    "iris_cloud_register_provisioners",
    "iris_cloud_store_schemes",
]


@hookimpl
def iris_cloud_public_options() -> dict[str, frozenset[str]]:
    """What may be shown: not the keys or the session token (nor ``session``)."""
    from iris_cloud_aws.options import PUBLIC_OPTIONS

    return PUBLIC_OPTIONS


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, str]:
    """``awssqs`` -> :class:`SqsBroker`."""
    return {"awssqs": "iris_cloud_aws.broker:SqsBroker"}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, str]:
    """``s3`` -> :class:`S3Store`."""
    return {"s3": "iris_cloud_aws.store:S3Store"}


@hookimpl
def iris_cloud_async_broker_schemes() -> dict[str, str]:
    """``awssqs`` for asyncio -> :class:`AsyncSqsBroker` (extra ``async``: aiobotocore)."""
    return {"awssqs": "iris_cloud_aws.aio.broker:AsyncSqsBroker"}


@hookimpl
def iris_cloud_async_store_schemes() -> dict[str, str]:
    """``s3`` for asyncio -> :class:`AsyncS3Store` (extra ``async``: aiobotocore)."""
    return {"s3": "iris_cloud_aws.aio.store:AsyncS3Store"}


@hookimpl
def iris_cloud_register_provisioners(provision: click.Group, deprovision: click.Group) -> None:
    """``provision aws`` and ``deprovision aws``."""
    from iris_cloud_aws.provision_cli import deprovision_aws, provision_aws

    provision.add_command(provision_aws)
    deprovision.add_command(deprovision_aws)
