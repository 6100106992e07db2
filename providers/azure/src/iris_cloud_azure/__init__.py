"""Azure provider for iris-cloud: Service Bus (``azuresb://``) and Blob Storage (``azblob://``).

See ``docs/azure.md`` for URLs, options and the credentials IRIS hands out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_azure.broker import ServiceBusBroker
    from iris_cloud_azure.store import AzureBlobStore


__all__ = ["AzureBlobStore", "ServiceBusBroker"]

# Imported on first access: loading the plugin imports this package, not the SDK.
__getattr__ = lazy_exports(
    __name__,
    {
        "ServiceBusBroker": "iris_cloud_azure.broker",
        "AzureBlobStore": "iris_cloud_azure.store",
    },
)
