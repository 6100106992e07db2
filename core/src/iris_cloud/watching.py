"""``ObjectStore.watch`` fed by the service's notifications, read through a broker.

S3 event notifications arrive on an SQS queue, Event Grid's BlobCreated events
on a Service Bus queue, Cloud Storage's OBJECT_FINALIZE notifications on a
Pub/Sub subscription: each is a queue, which the :class:`MessageBroker` port
already reads. What differs is only the shape of one notification, so a
provider's ``ObjectStore._notifications`` supplies the broker and a parser,
and ``ObjectStore.watch`` hands them to this module, which does the rest
once: skipping what existed at the start, completing a notification only
after the objects it announces were handed out, and not handing out one
object twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Protocol

from iris_cloud.errors import IrisCloudError
from iris_cloud.logs import get_logger
from iris_cloud.messages import Message
from iris_cloud.objects import NotificationParser, ObjectInfo

__all__ = ["NotificationParser", "watch_notifications"]

log = get_logger("iris_cloud.watching")


# What the loop uses of an ObjectStore and a MessageBroker, structurally: the
# ports call this module, so it does not import them.
class _Listing(Protocol):
    def list(self, prefix: str = "") -> Iterable[ObjectInfo]: ...


class _Notifications(Protocol):
    def receive(self, max_messages: int = 1, wait: float = 0.0) -> list[Message]: ...

    def abandon(self, message: Message, delay: float | None = None) -> None: ...

    def complete(self, message: Message) -> None: ...


# Recent (name, etag) pairs remembered to drop repeats: services deliver at
# least once and some announce one upload twice (S3 multipart on moto).
_REMEMBER = 10_000


def watch_notifications(
    store: _Listing,
    broker: _Notifications,
    parse: NotificationParser,
    prefix: str = "",
    *,
    poll_interval: float = 1.0,
    stop: threading.Event | None = None,
    include_existing: bool = False,
) -> Iterator[ObjectInfo]:
    """Yield objects created under ``prefix`` as ``broker``'s notifications announce them.

    As the polling ``watch`` does, objects present at the start are skipped
    unless ``include_existing`` (then they come first). A notification is
    completed once the caller has taken every object it announces, so one
    the caller never got to is delivered again. Notifications of other events,
    other prefixes or other shapes are completed and skipped: give each
    watcher a queue or subscription of its own. One the parser cannot read
    (a malformed payload) is skipped with a warning; one it cannot look up
    for now (a retryable error) is abandoned to come back.
    """
    stop = stop or threading.Event()
    seen: OrderedDict[tuple[str, str | None], None] = OrderedDict()
    for obj in store.list(prefix):
        seen[(obj.name, obj.etag)] = None
        if include_existing:
            yield obj
    while not stop.is_set():
        for msg in broker.receive(max_messages=10, wait=poll_interval):
            try:
                announced = list(parse(msg))
            except IrisCloudError as exc:
                if not exc.retryable:
                    raise
                # The parser could not look the object up for now: later.
                log.warning("notification %s abandoned: %s", msg.message_id, type(exc).__name__)
                broker.abandon(msg, delay=poll_interval)
                continue
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # A notification of a shape the parser cannot read will never
                # read better; stopping the watch on it would stop it for good.
                log.warning(
                    "notification %s skipped, unreadable: %s", msg.message_id, type(exc).__name__
                )
                announced = []
            for obj in announced:
                key = (obj.name, obj.etag)
                if not obj.name.startswith(prefix) or key in seen:
                    continue
                seen[key] = None
                if len(seen) > _REMEMBER:
                    seen.popitem(last=False)
                yield obj
            broker.complete(msg)
