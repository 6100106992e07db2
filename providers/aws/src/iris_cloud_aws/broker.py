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
from datetime import datetime
from typing import Any

from iris_cloud.logs import get_logger
from iris_cloud.ports import Message, MessageBroker, ObjectStore
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


class SqsBroker(SqsCommon, MessageBroker):
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

    def verify(self, right: str) -> bool:
        """Ask SQS with a request it refuses only after checking the credentials and the right
        (see :meth:`SqsCommon._verify_steps`); nothing is sent or taken."""
        return drive(self._verify_steps(right))

    def _prepare(self, msg: Message) -> Message:
        return drive(self._prepare_steps(msg))

    def _send_batch(self, batch: list[Message]) -> None:
        drive(self._send_batch_steps(batch))

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return drive(self._receive_from_steps(self.queue_url, max_messages, wait))

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return drive(self._dead_letters_steps(max_messages, wait))

    def complete(self, message: Message) -> None:
        """Delete ``message`` from its queue (DeleteMessage); LockLost once its lock ran out."""
        drive(self._complete_steps(message))

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Make ``message`` visible again now, or after ``delay`` seconds (whole, <= 12 h)."""
        drive(self._abandon_steps(message, delay))

    def renew_lock(self, message: Message) -> datetime:
        """Extend the visibility timeout by ``lock_seconds`` (or the queue's) from now."""
        return drive(self._renew_steps(message))

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Send ``message`` as received to the dead-letter queue with the reason, then delete it.

        The copy keeps the body and attributes as they were on the wire (a
        claim-checked message keeps its pointer) and adds ``DeadLetterReason``
        and ``DeadLetterErrorDescription``; properties past SQS's 10 attributes
        travel as JSON in ``iris_overflow`` and are restored on receipt.
        """
        drive(self._dead_letter_steps(message, reason, description))

    def close(self) -> None:
        """Close the SQS client's connection pool."""
        try:
            self._sqs.close()
        except Exception as exc:  # closing must not mask the caller's own error
            log.debug("closing the SQS client failed: %s", type(exc).__name__)
