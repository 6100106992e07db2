"""Dead-letter tooling on the broker port: look at, replay and purge a dead-letter queue.

Everything here is built on :meth:`~iris_cloud.ports.MessageBroker.receive_dead_letters`
and the settlement calls, so every provider has it without code of its own.
The port has no way to look at a dead-letter queue without taking
(:meth:`~iris_cloud.ports.MessageBroker.peek` shows the main queue only), so
a *sweep* receives the dead letters under peek-lock, one batch after another,
holds every message it took until the queue has nothing more to give, and
gives back (abandons) what it did not settle. Holding them is what makes a
sweep end: a message given back at once would be received again by the next
batch. Looking therefore counts a delivery on the dead-letter queue. A
message id is the sender's and several dead letters may share one: a
message counts as a copy of one held here only once that one's lock has run
out, so a flood of dead letters with one id hides no other.

:func:`replay` sends a copy of each selected message back to the broker's
queue (body, ids, subject, content type and properties; not the dead-letter
reason) and completes the dead letter **only after that send returned**. A
crash between the two leaves the dead letter in place, to be replayed again:
a duplicate (with the same message id, which dedupe recognises), never a
loss.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from iris_cloud.errors import IrisCloudError, LockLost
from iris_cloud.logs import get_logger
from iris_cloud.messages import Message
from iris_cloud.ports import MessageBroker

__all__ = [
    "DEFAULT_WAIT",
    "REPLAY_PROPERTY",
    "Progress",
    "Selector",
    "SweepReport",
    "browse",
    "purge",
    "replay",
    "replay_copy",
    "select",
]

log = get_logger(__name__)

DEFAULT_WAIT = 1.0
"""Seconds each receive waits before the queue counts as drained. A long poll
of at least a second sees every SQS server; a zero wait (a short poll) may
answer empty from a queue that is not."""

REPLAY_PROPERTY = "ReplayId"
"""Property each replayed copy carries: a new id per replay. Services that drop a
send whose deduplication id they saw recently (SQS FIFO, five minutes) would
otherwise drop the replay of a message sent moments ago, and the dead letter,
completed after that "successful" send, would be lost; providers that derive a
deduplication id from the message include this property in it."""

Selector = Callable[[Message], bool]
"""Which dead letters an operation applies to."""

Progress = Callable[["SweepReport"], None]
"""Called after each batch with the report so far (for progress output)."""


@dataclass
class SweepReport:
    """What a sweep did: messages taken from the dead-letter queue and what became of them."""

    seen: int = 0
    """Distinct dead letters received."""
    selected: int = 0
    """Of those, the ones the operation applied to."""
    done: int = 0
    """Replayed and completed, or purged."""
    left: int = 0
    """Selected but still in the dead-letter queue (its lock was lost before the
    complete: after a replay that is a duplicate, sent and not yet removed)."""
    messages: list[Message] = field(default_factory=list, repr=False)
    """The dead letters :func:`browse` saw, in the order received."""


def select(
    ids: tuple[str, ...] | list[str] = (),
    reason: str | None = None,
    everything: bool = False,
) -> Selector:
    """A selector: every message (``everything``), those of ``ids``, or of ``reason``."""
    wanted = set(ids)
    if everything:
        return lambda msg: True
    if not wanted and reason is None:
        raise ValueError("select what: ids, a reason, or everything")
    return lambda msg: (
        msg.message_id in wanted or (reason is not None and msg.dead_letter_reason == reason)
    )


def replay_copy(msg: Message) -> Message:
    """What :func:`replay` sends for the dead letter ``msg``: its content, none of its state.

    The message id is kept, so that a consumer with dedupe recognises the
    copy of a message it handled (or a second replay of one); the properties
    gain :data:`REPLAY_PROPERTY`.
    """
    return Message(
        body=msg.body,
        message_id=msg.message_id,
        correlation_id=msg.correlation_id,
        content_type=msg.content_type,
        subject=msg.subject,
        properties={**msg.properties, REPLAY_PROPERTY: uuid.uuid4().hex},
    )


def browse(
    broker: MessageBroker,
    *,
    limit: int | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress | None = None,
) -> SweepReport:
    """Every dead letter (the first ``limit``), taken and given back; see the module docstring.

    The messages are in ``report.messages``; none is settled.
    """
    report = SweepReport()

    def keep(msg: Message) -> bool:
        report.messages.append(msg)
        return False

    _sweep(broker, lambda msg: True, keep, report, limit, wait, progress)
    return report


def replay(
    broker: MessageBroker,
    which: Selector,
    *,
    limit: int | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress | None = None,
) -> SweepReport:
    """Send each selected dead letter back to ``broker``'s queue, then complete it.

    A send that fails raises after every held message was given back: what
    was replayed before stays replayed, the rest stays dead-lettered.
    """
    report = SweepReport()

    def resend(msg: Message) -> bool:
        broker.send(replay_copy(msg))
        return True

    _sweep(broker, which, resend, report, limit, wait, progress)
    return report


def purge(
    broker: MessageBroker,
    which: Selector | None = None,
    *,
    limit: int | None = None,
    wait: float = DEFAULT_WAIT,
    progress: Progress | None = None,
) -> SweepReport:
    """Complete (delete) the selected dead letters, every one by default."""
    report = SweepReport()
    _sweep(broker, which or (lambda msg: True), lambda msg: True, report, limit, wait, progress)
    return report


def _sweep(
    broker: MessageBroker,
    which: Selector,
    act: Callable[[Message], bool],
    report: SweepReport,
    limit: int | None,
    wait: float,
    progress: Progress | None,
) -> None:
    """``act`` on the selected, complete where it says to; give back the rest."""
    taken = _Taken()
    renewing = _Renewing(broker)
    with _holding(broker) as held:
        while limit is None or report.seen < limit:
            renewing.due(held)
            room = broker.capabilities.max_batch if limit is None else limit - report.seen
            batch = broker.receive_dead_letters(max_messages=min(10, room), wait=wait)
            if not batch:
                break
            fresh = 0
            for msg in batch:
                renewing.taken(msg)
                if taken.again(msg):
                    # A copy of one held here whose lock ran out: hold it too,
                    # or the next batch would bring it back again.
                    held.append(msg)
                    continue
                fresh += 1
                report.seen += 1
                if not which(msg):
                    held.append(msg)
                    continue
                report.selected += 1
                if not act(msg):
                    held.append(msg)
                    continue
                try:
                    broker.complete(msg)
                except LockLost:
                    report.left += 1
                    continue
                taken.settled(msg)
                report.done += 1
            if progress is not None:
                progress(report)
            if not fresh:
                # Nothing new: only copies of held messages whose locks ran out.
                break


class _Renewing:
    """Renews the locks of held dead letters past half their length, where the broker can.

    A sweep longer than the dead-letter queue's lock would otherwise get its
    held messages back, as copies, before the messages it has not seen yet,
    and end there: a ``list`` of a long queue would stop part-way.
    """

    def __init__(self, broker: MessageBroker) -> None:
        self._broker = broker
        self._on = broker.capabilities.lock_renewal
        self._half: dict[int, timedelta] = {}

    def taken(self, msg: Message) -> None:
        """Note how long ``msg``'s lock is, as it arrives."""
        if self._on and msg.locked_until is not None:
            self._half[id(msg)] = (msg.locked_until - datetime.now(UTC)) / 2

    def due(self, held: list[Message]) -> None:
        """Renew each held lock with less than half its length left."""
        if not self._on:
            return
        now = datetime.now(UTC)
        for msg in held:
            half = self._half.get(id(msg))
            if half is None or msg.locked_until is None or msg.locked_until - now > half:
                continue
            try:
                until = self._broker.renew_lock(msg)
            except LockLost:
                self._half.pop(id(msg), None)  # it comes back, and is held again as a copy
                continue
            except IrisCloudError as exc:
                # Renewing is an aid: without it the sweep is as before.
                log.debug("renewing held dead letters failed (%s)", type(exc).__name__)
                self._on = False
                return
            if until is not None:
                msg.locked_until = until


_CLOCK_SKEW = timedelta(seconds=5)
"""How far this host's clock may be behind the service's for a copy to be seen as one."""


class _Taken:
    """The messages a sweep took, by id, to tell a copy come back from another message.

    A message id is the sender's: several dead letters may share one (a
    sender reusing ids, or flooding with one on purpose). Only a message
    whose lock has run out can come back while the sweep holds it, so a
    message with the id of one taken here counts as its copy only when that
    one's lock has run out; otherwise it is another message, and is swept
    like any other. (Without the lock's end, as the port promises it, a
    shared id is all there is to go by.) The lock's end is the service's
    clock, so "run out" allows :data:`_CLOCK_SKEW`; a clock further off sees
    a copy as new at most once per message (shown twice, never lost), as the
    next copy finds the older lock long over.
    """

    def __init__(self) -> None:
        self._locks: dict[str, list[datetime | None]] = {}

    def again(self, msg: Message) -> bool:
        """Whether ``msg`` is a copy of one taken before; else remember it as taken."""
        if not msg.message_id:
            return False
        locks = self._locks.setdefault(msg.message_id, [])
        soon = datetime.now(UTC) + _CLOCK_SKEW
        for i, until in enumerate(locks):
            if until is None or until <= soon:
                locks[i] = msg.locked_until  # the copy is held now, under its own lock
                return True
        locks.append(msg.locked_until)
        return False

    def settled(self, msg: Message) -> None:
        """``msg`` was completed: it cannot come back, so nothing is its copy."""
        locks = self._locks.get(msg.message_id)
        if locks and msg.locked_until in locks:
            locks.remove(msg.locked_until)


@contextmanager
def _holding(broker: MessageBroker) -> Iterator[list[Message]]:
    """A list of messages to give back when the sweep ends, however it ends."""
    held: list[Message] = []
    try:
        yield held
    finally:
        for msg in held:
            try:
                broker.abandon(msg)
            except IrisCloudError as exc:
                # Its lock ran out or the link is gone: it comes back by itself.
                log.debug("dead letter %s not given back (%s)", msg.message_id, type(exc).__name__)
