"""The iris-cloud plugin of the Google Cloud provider (entry point ``iris_cloud: gcp``).

Serves ``gcppubsub://`` brokers (:class:`~iris_cloud_gcp.broker.PubSubBroker`)
and ``gs://`` stores (:class:`~iris_cloud_gcp.store.GcsStore`).
"""

from __future__ import annotations

from iris_cloud import hookimpl
from iris_cloud.ports import MessageBroker, ObjectStore

from iris_cloud_gcp.broker import PubSubBroker
from iris_cloud_gcp.store import GcsStore

__all__ = ["iris_cloud_broker_schemes", "iris_cloud_store_schemes"]


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """``gcppubsub://projects/P/topics/T`` and ``.../subscriptions/S``."""
    return {PubSubBroker.scheme: PubSubBroker}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """``gs://BUCKET/PREFIX``."""
    return {GcsStore.scheme: GcsStore}
