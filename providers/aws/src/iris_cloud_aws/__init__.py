"""AWS provider for iris-cloud: SQS queues (``awssqs://``) and S3 buckets (``s3://``).

Install ``iris-cloud[aws]``; the plugin registers itself, so the classes are
normally reached through :func:`iris_cloud.open_broker` / :func:`iris_cloud.open_store`.
See ``docs/aws.md`` for URLs, options, capabilities and the IAM rights each
endpoint needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_cloud.plugins import lazy_exports

if TYPE_CHECKING:
    from iris_cloud_aws.broker import SqsBroker
    from iris_cloud_aws.store import S3Store


__all__ = ["S3Store", "SqsBroker"]

# Imported on first access: loading the plugin imports this package, not the SDK.
__getattr__ = lazy_exports(
    __name__,
    {
        "SqsBroker": "iris_cloud_aws.broker",
        "S3Store": "iris_cloud_aws.store",
    },
)
