"""The iris-cloud plugin of the Google Cloud provider (entry point ``iris_cloud: gcp``).

Serves ``gcppubsub://`` brokers (:class:`~iris_cloud_gcp.broker.PubSubBroker`)
and ``gs://`` stores (:class:`~iris_cloud_gcp.store.GcsStore`).

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
    """What may be shown: the key file's path, never the credentials themselves."""
    from iris_cloud_gcp.options import PUBLIC_OPTIONS

    return PUBLIC_OPTIONS


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, str]:
    """``gcppubsub://projects/P/topics/T`` and ``.../subscriptions/S``."""
    return {"gcppubsub": "iris_cloud_gcp.broker:PubSubBroker"}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, str]:
    """``gs://BUCKET/PREFIX``."""
    return {"gs": "iris_cloud_gcp.store:GcsStore"}


@hookimpl
def iris_cloud_async_broker_schemes() -> dict[str, str]:
    """``gcppubsub`` for asyncio, on the generated async Pub/Sub clients."""
    return {"gcppubsub": "iris_cloud_gcp.aio.broker:AsyncPubSubBroker"}


@hookimpl
def iris_cloud_async_store_schemes() -> dict[str, str]:
    """``gs`` for asyncio: the sync store in worker threads (no async GCS client)."""
    return {"gs": "iris_cloud_gcp.aio.store:AsyncGcsStore"}


@hookimpl
def iris_cloud_register_provisioners(provision: click.Group, deprovision: click.Group) -> None:
    """``provision gcp`` and ``deprovision gcp``."""
    from iris_cloud_gcp.provision_cli import deprovision_gcp, provision_gcp

    provision.add_command(provision_gcp)
    deprovision.add_command(deprovision_gcp)
