"""The Azure provider for asyncio: ``azure.servicebus.aio`` and ``azure.storage.blob.aio``.

:class:`AsyncServiceBusBroker` (``azuresb://``) and :class:`AsyncAzureBlobStore`
(``azblob://``) take the URLs and options of their sync twins and share
their I/O-free code; ``iris_cloud.aio.open_broker`` / ``open_store`` find them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_azure.aio.broker import AsyncServiceBusBroker
    from iris_cloud_azure.aio.store import AsyncAzureBlobStore

__all__ = ["AsyncAzureBlobStore", "AsyncServiceBusBroker"]

__getattr__ = lazy_exports(
    __name__,
    {
        "AsyncServiceBusBroker": "iris_cloud_azure.aio.broker",
        "AsyncAzureBlobStore": "iris_cloud_azure.aio.store",
    },
)
