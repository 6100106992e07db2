"""Google Cloud provider for iris-cloud: Pub/Sub brokers and Cloud Storage stores.

``gcppubsub://projects/P/topics/T`` sends, ``gcppubsub://projects/P/subscriptions/S``
receives; ``gs://BUCKET/PREFIX`` is an object store. See docs/gcp.md.
"""

from __future__ import annotations

from iris_cloud_gcp.broker import PubSubBroker
from iris_cloud_gcp.store import GcsStore

__all__ = ["GcsStore", "PubSubBroker"]
