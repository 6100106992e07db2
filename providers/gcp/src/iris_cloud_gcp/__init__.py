"""Google Cloud provider for iris-cloud: Pub/Sub brokers and Cloud Storage stores.

``gcppubsub://projects/P/topics/T`` sends, ``gcppubsub://projects/P/subscriptions/S``
receives; ``gs://BUCKET/PREFIX`` is an object store. See docs/gcp.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_gcp.broker import PubSubBroker
    from iris_cloud_gcp.store import GcsStore


__all__ = ["GcsStore", "PubSubBroker"]

# Imported on first access: loading the plugin imports this package, not the SDK.
__getattr__ = lazy_exports(
    __name__,
    {
        "PubSubBroker": "iris_cloud_gcp.broker",
        "GcsStore": "iris_cloud_gcp.store",
    },
)
