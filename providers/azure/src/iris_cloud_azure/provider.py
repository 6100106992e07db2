"""The iris-cloud plugin: ``azuresb://`` brokers and ``azblob://`` stores.

Registered through the ``iris_cloud`` entry point (``azure``), so
``iris_cloud.open_broker("azuresb://...")`` and ``open_store("azblob://...")``
find these classes once ``iris-cloud-azure`` is installed.
"""

from __future__ import annotations

from iris_cloud.hookspecs import hookimpl
from iris_cloud.ports import MessageBroker, ObjectStore

from iris_cloud_azure.broker import ServiceBusBroker
from iris_cloud_azure.store import AzureBlobStore


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """``azuresb``: Azure Service Bus queues and topic subscriptions."""
    return {ServiceBusBroker.scheme: ServiceBusBroker}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """``azblob``: Azure Blob Storage containers."""
    return {AzureBlobStore.scheme: AzureBlobStore}
