"""The AWS provider for asyncio (extra ``iris-cloud-aws[async]``, on aiobotocore).

:class:`AsyncSqsBroker` (``awssqs://``) and :class:`AsyncS3Store` (``s3://``)
take the URLs and options of their sync twins and share their code but for
the client; ``iris_cloud.aio.open_broker`` / ``open_store`` find them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_aws.aio.broker import AsyncSqsBroker
    from iris_cloud_aws.aio.store import AsyncS3Store

__all__ = ["AsyncS3Store", "AsyncSqsBroker"]

__getattr__ = lazy_exports(
    __name__,
    {"AsyncSqsBroker": "iris_cloud_aws.aio.broker", "AsyncS3Store": "iris_cloud_aws.aio.store"},
)
