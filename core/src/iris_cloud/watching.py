"""``ObjectStore.watch`` fed by the service's notifications, read through a broker.

S3 event notifications arrive on an SQS queue, Event Grid's BlobCreated events
on a Service Bus queue, Cloud Storage's OBJECT_FINALIZE notifications on a
Pub/Sub subscription: each is a queue, which the :class:`MessageBroker` port
already reads. What differs is only the shape of one notification, so a
provider's ``ObjectStore._notifications`` supplies the broker and a parser,
and ``ObjectStore.watch`` hands them to this module, which does the rest
once: skipping what existed at the start, completing a notification only
after the objects it announces were handed out, and not handing out one
object twice. The loop is steps (:mod:`iris_cloud.steps`), so the async
``watch`` of :mod:`iris_cloud.aio` runs the same loop on an async broker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from iris_cloud.errors import IrisCloudError
from iris_cloud.logs import get_logger
from iris_cloud.messages import Message
from iris_cloud.objects import NotificationParser, ObjectInfo
from iris_cloud.steps import Call, StreamSteps, drive_stream

__all__ = ["NotificationParser", "notification_watch_steps", "watch_notifications"]

log = get_logger("iris_cloud.watching")


# What the loop uses of an ObjectStore and a MessageBroker (sync or async),
# structurally: the ports call this module, so it does not import them.
class _Listing(Protocol):
    def list(self, prefix: str = "") -> Any: ...


class _Notifications(Protocol):
    def receive(self, max_messages: int = 1, wait: float = 0.0) -> Any: ...

    def abandon(self, message: Message, delay: float | None = None) -> Any: ...

    def complete(self, message: Message) -> Any: ...


class _Stop(Protocol):
    def is_set(self) -> bool: ...


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
    return drive_stream(
        notification_watch_steps(
            store,
            broker,
            parse,
            prefix,
            poll_interval=poll_interval,
            stop=stop or threading.Event(),
            include_existing=include_existing,
            next_item=next,
        )
    )


def notification_watch_steps(
    store: _Listing,
    broker: _Notifications,
    parse: NotificationParser,
    prefix: str,
    *,
    poll_interval: float,
    stop: _Stop,
    include_existing: bool,
    next_item: Callable[..., Any],
) -> StreamSteps[ObjectInfo]:
    """:func:`watch_notifications` as steps; ``next_item(listing, None)`` pages the listing."""
    seen: OrderedDict[tuple[str, str | None], None] = OrderedDict()
    listing = store.list(prefix)
    while (obj := (yield Call(next_item, (listing, None)))) is not None:
        seen[(obj.name, obj.etag)] = None
        if include_existing:
            yield obj
    while not stop.is_set():
        received = yield Call(broker.receive, (), {"max_messages": 10, "wait": poll_interval})
        for msg in received:
            try:
                announced = list(parse(msg))
            except IrisCloudError as exc:
                if not exc.retryable:
                    raise
                # The parser could not look the object up for now: later.
                log.warning("notification %s abandoned: %s", msg.message_id, type(exc).__name__)
                yield Call(broker.abandon, (msg,), {"delay": poll_interval})
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
            yield Call(broker.complete, (msg,))
