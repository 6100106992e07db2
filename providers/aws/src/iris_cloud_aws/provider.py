"""The iris-cloud plugin of this package: ``awssqs://`` brokers and ``s3://`` stores.

Registered through the ``iris_cloud`` entry-point group (``aws``), so
``iris_cloud.open_broker("awssqs://...")`` and ``open_store("s3://...")``
find these classes once the package is installed.
"""

from __future__ import annotations

from iris_cloud import hookimpl
from iris_cloud.ports import MessageBroker, ObjectStore

from iris_cloud_aws.broker import SqsBroker
from iris_cloud_aws.store import S3Store

__all__ = ["iris_cloud_broker_schemes", "iris_cloud_store_schemes"]


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """``awssqs`` -> :class:`SqsBroker`."""
    return {"awssqs": SqsBroker}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """``s3`` -> :class:`S3Store`."""
    return {"s3": S3Store}
