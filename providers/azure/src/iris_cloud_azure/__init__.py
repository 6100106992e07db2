"""Azure provider for iris-cloud: Service Bus (``azuresb://``) and Blob Storage (``azblob://``).

See ``docs/azure.md`` for URLs, options and the credentials IRIS hands out.
"""

from __future__ import annotations

from iris_cloud_azure.broker import ServiceBusBroker
from iris_cloud_azure.store import AzureBlobStore

__all__ = ["AzureBlobStore", "ServiceBusBroker"]
