"""The iris-cloud plugin of the Google Cloud provider (entry point ``iris_cloud: gcp``).

Serves ``gcppubsub://`` brokers (:class:`~iris_cloud_gcp.broker.PubSubBroker`)
and ``gs://`` stores (:class:`~iris_cloud_gcp.store.GcsStore`).

The classes are named by import path, so loading the plugin (every CLI start,
every ``open_broker``) does not import the SDK; that happens when a URL of
the scheme is first opened.
"""

from __future__ import annotations

from iris_cloud import hookimpl

__all__ = ["iris_cloud_broker_schemes", "iris_cloud_store_schemes"]


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, str]:
    """``gcppubsub://projects/P/topics/T`` and ``.../subscriptions/S``."""
    return {"gcppubsub": "iris_cloud_gcp.broker:PubSubBroker"}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, str]:
    """``gs://BUCKET/PREFIX``."""
    return {"gs": "iris_cloud_gcp.store:GcsStore"}
