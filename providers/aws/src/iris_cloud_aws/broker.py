"""Amazon SQS as a :class:`~iris_cloud.ports.MessageBroker`: ``awssqs://QUEUE_URL_OR_NAME``.

URL forms (gocloud.dev's):

* ``awssqs://sqs.us-east-1.amazonaws.com/123456789012/orders`` - host and path
  form the queue URL (``https://`` unless ``endpoint_url`` says ``http``); the
  region is taken from the host when not given.
* ``awssqs://orders?region=us-east-1`` - a queue name, resolved once with
  ``GetQueueUrl`` (``queue_owner=ACCOUNT`` for another account's queue).

Headers travel as message attributes: our message id in ``iris_message_id``
(SQS assigns its own ``MessageId``), ``iris_correlation_id``, ``iris_subject``,
``iris_content_type``; properties as ``String`` / ``Number`` attributes. SQS
allows 10 attributes per message and those headers count, as does the claim
check's ``ExtendedPayloadSize``: a message that would need more is refused with
:class:`ConfigurationError` before anything is sent. The trace context
(``traceparent``, ``tracestate``) is the exception: where it does not fit, it
is left out and the message goes untraced.
"""

from __future__ import annotations

import time
from typing import Any

from iris_cloud.logs import get_logger
from iris_cloud.ports import Message, ObjectStore
from iris_cloud.stepped import SteppedBroker
from iris_cloud.steps import drive

from iris_cloud_aws._session import AwsSession
from iris_cloud_aws._sqs import (
    ATTRIBUTE_LIMIT,
    FALLBACK_MAX_MESSAGE_BYTES,
    SqsCommon,
    queue_location,
)

__all__ = ["ATTRIBUTE_LIMIT", "FALLBACK_MAX_MESSAGE_BYTES", "SqsBroker", "queue_location"]

log = get_logger(__name__)


class SqsBroker(SqsCommon, SteppedBroker):
    """One SQS queue (standard or FIFO), with peek-lock via the visibility timeout.

    The options are :class:`~iris_cloud_aws._sqs.SqsCommon`'s (``session`` a
    boto3 Session, ``claim_check`` an ObjectStore). The queue's URL and
    attributes are read when it opens.
    """

    store_class = ObjectStore

    def __init__(self, session: AwsSession, **options: Any) -> None:
        super().__init__(session, **options)
        self._sqs = session.client("sqs")
        drive(self._setup_steps())

    _sleep = staticmethod(time.sleep)

    def _prepare(self, msg: Message) -> Message:
        return drive(self._prepare_steps(msg))

    def close(self) -> None:
        """Close the SQS client's connection pool."""
        try:
            self._sqs.close()
        except Exception as exc:  # closing must not mask the caller's own error
            log.debug("closing the SQS client failed: %s", type(exc).__name__)
