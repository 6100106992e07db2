"""The iris-cloud plugin: ``azuresb://`` brokers and ``azblob://`` stores.

Registered through the ``iris_cloud`` entry point (``azure``), so
``iris_cloud.open_broker("azuresb://...")`` and ``open_store("azblob://...")``
find these classes once ``iris-cloud-azure`` is installed.

The classes are named by import path, so loading the plugin (every CLI start,
every ``open_broker``) does not import the SDK; that happens when a URL of
the scheme is first opened.
"""

from __future__ import annotations

from iris_cloud.hookspecs import hookimpl


@hookimpl
def iris_cloud_public_options() -> dict[str, frozenset[str]]:
    """What may be shown: no connection string, SAS, account key or credential."""
    from iris_cloud_azure.options import PUBLIC_OPTIONS

    return PUBLIC_OPTIONS


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, str]:
    """``azuresb``: Azure Service Bus queues and topic subscriptions."""
    return {"azuresb": "iris_cloud_azure.broker:ServiceBusBroker"}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, str]:
    """``azblob``: Azure Blob Storage containers."""
    return {"azblob": "iris_cloud_azure.store:AzureBlobStore"}


@hookimpl
def iris_cloud_async_broker_schemes() -> dict[str, str]:
    """``azuresb`` for asyncio, on ``azure.servicebus.aio``."""
    return {"azuresb": "iris_cloud_azure.aio.broker:AsyncServiceBusBroker"}


@hookimpl
def iris_cloud_async_store_schemes() -> dict[str, str]:
    """``azblob`` for asyncio, on ``azure.storage.blob.aio`` (the ``async`` extra)."""
    return {"azblob": "iris_cloud_azure.aio.store:AsyncAzureBlobStore"}
