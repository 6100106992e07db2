"""The GCP provider for asyncio.

:class:`AsyncPubSubBroker` (``gcppubsub://``) is native, on the generated
``google.pubsub_v1`` async clients; :class:`AsyncGcsStore` (``gs://``) runs the
sync store in worker threads, google-cloud-storage having no async client.
``iris_cloud.aio.open_broker`` / ``open_store`` find them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_gcp.aio.broker import AsyncPubSubBroker
    from iris_cloud_gcp.aio.store import AsyncGcsStore

__all__ = ["AsyncGcsStore", "AsyncPubSubBroker"]

__getattr__ = lazy_exports(
    __name__,
    {"AsyncPubSubBroker": "iris_cloud_gcp.aio.broker", "AsyncGcsStore": "iris_cloud_gcp.aio.store"},
)
