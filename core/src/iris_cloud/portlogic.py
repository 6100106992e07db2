"""What the ports decide, once for the sync ports and the async ones.

:class:`~iris_cloud.ports.MessageBroker` / :class:`~iris_cloud.ports.ObjectStore`
and :class:`~iris_cloud.aio.AsyncMessageBroker` /
:class:`~iris_cloud.aio.AsyncObjectStore` call these: coercing what callers
send, giving messages ids, the size limit and the claim check, batching by
count and bytes, what ``receive`` does with a message that did not decode or
whose pointer is bad, the claim-check cleanup after ``complete``, the checks
of names, prefixes, rights and signed-URL arguments, and ``watch`` by
polling. Decisions around I/O are steps (:mod:`iris_cloud.steps`) whose
:class:`~iris_cloud.steps.Call` carries the port's own (blocking or async)
method; the rest are plain functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from iris_cloud import tracing
from iris_cloud.capabilities import Capabilities
from iris_cloud.claimcheck import (
    PayloadStore,
    is_claim_checked,
    offload_steps,
    restore_steps,
)
from iris_cloud.decoding import DECODE_FAILED, UndecodableMessage, failure_text
from iris_cloud.errors import (
    ConfigurationError,
    IrisCloudError,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
)
from iris_cloud.logs import get_logger
from iris_cloud.messages import _MAPPING_REFUSED, Message, Sendable
from iris_cloud.objects import ObjectInfo, check_object_name
from iris_cloud.steps import Call, Steps, StreamSteps

__all__ = [
    "CLAIM_CHECK_RETRY_DELAY",
    "MAX_SIGNED_URL_EXPIRY",
    "BrokerLike",
    "batches",
    "cannot_sign",
    "check_list_prefix",
    "check_right",
    "completed_many_steps",
    "completed_steps",
    "dead_letters_steps",
    "deletes_payloads",
    "held_by",
    "peek_refused",
    "poll_watch_steps",
    "prepare_steps",
    "put_metadata",
    "raise_outcome",
    "received_as_is",
    "received_steps",
    "send_steps",
    "sendables",
    "settle_each_steps",
    "signed_url_args",
]

log = get_logger("iris_cloud.ports")

CLAIM_CHECK_RETRY_DELAY = 5.0
"""Seconds before a message whose payload could not be fetched for now comes back
(where ``capabilities.delayed_retry``), so a store outage is not a busy loop."""

MAX_SIGNED_URL_EXPIRY = timedelta(days=7)
"""Longest validity of a signed URL: the most SigV4 (S3) and V4 (GCS) signatures
allow, and a bound on how long a leaked Azure SAS stays good."""


class BrokerLike(Protocol):
    """What the steps use of a sync or async broker (the calls' results are the driver's)."""

    capabilities: Capabilities
    claim_check: Any
    claim_check_max_bytes: int
    claim_check_sources: tuple[Any, ...]
    claim_check_delete: bool

    def _prepare(self, msg: Message) -> object: ...

    def _send_batch(self, batch: list[Message]) -> object: ...

    def _receive(self, max_messages: int, wait: float) -> object: ...

    def _receive_dead_letters(self, max_messages: int, wait: float) -> object: ...

    def abandon(self, message: Message, delay: float | None = None) -> object:
        """Give ``message`` back to be delivered again (after ``delay`` seconds if supported)."""
        ...

    def dead_letter(self, message: Message, reason: str, description: str = "") -> object:
        """Move ``message`` to the dead-letter queue with a ``reason`` that carries no value
        from it."""
        ...


# -- sending -----------------------------------------------------------------------


def sendables(messages: Sendable | Iterable[Sendable]) -> list[Message]:
    """What ``send`` was given, as messages (one message or an iterable of them)."""
    items: list[Sendable]
    if isinstance(messages, Message | bytes | bytearray | memoryview | str | BaseModel):
        items = [messages]
    elif isinstance(messages, Mapping):
        # Iterating it would send one message per key.
        raise TypeError(_MAPPING_REFUSED)
    else:
        items = list(messages)
    return [Message.coerce(m) for m in items]


def send_steps(broker: BrokerLike, messages: Sendable | Iterable[Sendable]) -> Steps[list[str]]:
    """``send``: coerce, prepare each (ids, claim check), then send batch by batch."""
    coerced = sendables(messages)
    spans = tracing.SendSpans(broker)
    try:
        prepared: list[Message] = []
        for msg in coerced:
            # The trace context goes in before _prepare: it counts towards the
            # size limit, and a claim-checked message carries it too.
            msg = spans.start(_with_id(msg))
            prepared.append((yield Call(broker._prepare, (msg,))))
        ids: list[str] = []
        for batch in batches(prepared, broker.capabilities):
            yield Call(broker._send_batch, (batch,))
            spans.sent(len(batch))
            ids.extend(m.message_id for m in batch)
    except BaseException as exc:
        spans.failed(exc)
        raise
    return ids


def _with_id(msg: Message) -> Message:
    return msg if msg.message_id else replace(msg, message_id=uuid.uuid4().hex)


def prepare_steps(broker: BrokerLike, msg: Message) -> Steps[Message]:
    """``_prepare``: an id, and the claim check for a body over the limit."""
    msg = _with_id(msg)
    if msg.size <= broker.capabilities.max_message_bytes:
        return msg
    if broker.claim_check is None:
        raise MessageTooLarge(
            f"message {msg.message_id} is {msg.size} bytes, over this endpoint's limit of "
            f"{broker.capabilities.max_message_bytes}; configure a claim_check store"
        )
    return (yield from offload_steps(msg, broker.claim_check))


def batches(messages: list[Message], caps: Capabilities) -> Iterator[list[Message]]:
    """``messages`` in batches of at most ``caps.max_batch`` and ``caps.max_batch_bytes``."""
    limit = caps.max_batch_bytes
    batch: list[Message] = []
    used = 0
    for msg in messages:
        full = len(batch) >= caps.max_batch or (
            limit is not None and batch and used + msg.size > limit
        )
        if full:
            yield batch
            batch, used = [], 0
        batch.append(msg)
        used += msg.size
    if batch:
        yield batch


# -- receiving ---------------------------------------------------------------------


def _restore(broker: BrokerLike, msg: Message, store: PayloadStore) -> Steps[Message]:
    return restore_steps(
        msg, store, max_bytes=broker.claim_check_max_bytes, sources=broker.claim_check_sources
    )


def received_as_is(broker: BrokerLike, received: list[Message]) -> bool:
    """Whether ``receive`` returns what ``_receive`` did as it is, with no steps.

    So when every message decoded and none is a claim-check pointer to follow
    (one only counts where ``claim_check`` is configured): the common case,
    which then costs neither a generator nor a driver. Otherwise
    :func:`received_steps` finishes the call.
    """
    checked = broker.claim_check is not None
    for msg in received:
        if isinstance(msg, UndecodableMessage) or (checked and is_claim_checked(msg)):
            return False
    return True


def received_steps(broker: BrokerLike, received: list[Message]) -> Steps[list[Message]]:
    """The rest of ``receive`` after ``_receive`` returned ``received``.

    See :meth:`iris_cloud.ports.MessageBroker.receive` for what it does: what
    did not decode or whose claim check is bad is dead-lettered, what cannot be
    fetched for now given back, and the rest returned with bodies fetched.
    """
    out: list[Message] = []
    for index, msg in enumerate(received):
        if isinstance(msg, UndecodableMessage):
            yield from _reject(broker, msg, DECODE_FAILED, msg.decode_error)
            continue
        if broker.claim_check is None or not is_claim_checked(msg):
            out.append(msg)
            continue
        try:
            out.append((yield from _restore(broker, msg, broker.claim_check)))
        except PermissionDenied:
            for held in [*out, *received[index:]]:
                yield from _give_back(broker, held)
            raise
        except IrisCloudError as exc:
            if exc.retryable:
                log.warning(
                    "claim check of message %s failed (%s), abandoned",
                    msg.message_id,
                    type(exc).__name__,
                )
                yield from _give_back(broker, msg, CLAIM_CHECK_RETRY_DELAY)
            else:
                yield from _reject(broker, msg, "ClaimCheckFailed", failure_text(exc))
        except Exception as exc:  # the pointer is the sender's: anything may fail
            yield from _reject(broker, msg, "ClaimCheckFailed", failure_text(exc))
    return out


def _reject(broker: BrokerLike, msg: Message, reason: str, description: str) -> Steps[None]:
    """Dead-letter a message that can never be handled; never raises.

    If even that fails (no dead-letter queue, a lost lock), the message is
    given back with a delay: it is not lost, and it costs no other message.
    """
    log.warning(
        "message %s cannot be handled (%s: %s); dead-lettering it",
        msg.message_id,
        reason,
        description,
    )
    try:
        yield Call(broker.dead_letter, (msg, reason, description))
    except Exception as exc:
        log.error(
            "dead-lettering message %s failed (%s); it is given back",
            msg.message_id,
            type(exc).__name__,
        )
        yield from _give_back(broker, msg, CLAIM_CHECK_RETRY_DELAY)


def _give_back(broker: BrokerLike, msg: Message, delay: float | None = None) -> Steps[None]:
    try:
        yield Call(broker.abandon, (msg,), {"delay": delay})
    except Exception as exc:  # its lock expires instead
        log.warning("abandoning message %s failed (%s)", msg.message_id, type(exc).__name__)


def dead_letters_steps(broker: BrokerLike, max_messages: int, wait: float) -> Steps[list[Message]]:
    """``receive_dead_letters``: bodies fetched back where they can be, else left as pointers."""
    received: list[Message] = yield Call(broker._receive_dead_letters, (max_messages, wait))
    if broker.claim_check is None:
        return received
    out: list[Message] = []
    for msg in received:
        try:
            out.append((yield from _restore(broker, msg, broker.claim_check)))
        except Exception as exc:  # the pointer is the sender's: anything may fail
            log.warning(
                "dead letter %s keeps its claim-check pointer (%s)",
                msg.message_id,
                type(exc).__name__,
            )
            out.append(msg)
    return out


def deletes_payloads(broker: BrokerLike) -> bool:
    """Whether completing a claim-checked message of ``broker`` deletes its payload."""
    return bool(
        broker.claim_check_delete
        and broker.capabilities.completes_for_all
        and broker.claim_check is not None
    )


def completed_steps(broker: BrokerLike, message: Message) -> Steps[None]:
    """``_completed``: delete a completed message's payload if nobody else can need it."""
    name = message.claim_check_name
    if not (name and deletes_payloads(broker)):
        return
    try:
        yield Call(broker.claim_check.delete, (name,))
    except NotFound:
        pass  # deleted by an earlier completion of a copy
    except Exception as exc:
        log.warning(
            "claim-check payload of message %s not deleted (%s)",
            message.message_id,
            type(exc).__name__,
        )


def settle_each_steps(
    settle: Callable[..., Any], messages: list[Message], *args: Any
) -> Steps[list[IrisCloudError | None]]:
    """``complete_many`` / ``abandon_many`` where the service has no batch: one call each.

    A message's failure (:class:`~iris_cloud.errors.LockLost`, an outage) is its
    entry of the outcomes and costs no other message; anything not from the error
    tree is a bug and propagates.
    """
    outcomes: list[IrisCloudError | None] = []
    for message in messages:
        try:
            yield Call(settle, (message, *args))
        except IrisCloudError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


H = TypeVar("H")
K = TypeVar("K")


def held_by(
    messages: list[Message], held: Callable[[Message], H], key: Callable[[H], K]
) -> tuple[list[IrisCloudError | None], dict[K, list[tuple[int, H]]]]:
    """What a native ``complete_many`` / ``abandon_many`` starts from.

    One outcome per message (``None`` so far), and the handle ``held(message)``
    of each, with its index, grouped by ``key(handle)`` (a queue, a
    subscription): a message whose handle cannot be had gets its error as
    its outcome and is left out.
    """
    outcomes: list[IrisCloudError | None] = [None] * len(messages)
    groups: dict[K, list[tuple[int, H]]] = {}
    for index, message in enumerate(messages):
        try:
            handle = held(message)
        except IrisCloudError as exc:
            outcomes[index] = exc
            continue
        groups.setdefault(key(handle), []).append((index, handle))
    return outcomes, groups


def raise_outcome(outcomes: list[IrisCloudError | None]) -> None:
    """Raise the error of a one-message ``complete_many`` / ``abandon_many``, if any.

    For providers whose single settle calls are their batch ones with one message.
    """
    (outcome,) = outcomes
    if outcome is not None:
        raise outcome


def completed_many_steps(
    broker: BrokerLike, messages: list[Message], outcomes: list[IrisCloudError | None]
) -> Steps[list[IrisCloudError | None]]:
    """After a native ``complete_many``: the claim-check cleanup of each completed message."""
    if not deletes_payloads(broker):
        return outcomes  # nothing to clean up: not worth a step per message
    for message, outcome in zip(messages, outcomes, strict=True):
        if outcome is None:
            yield from completed_steps(broker, message)
    return outcomes


def cannot_sign(store: object) -> ConfigurationError:
    """The error ``signed_url`` raises where the credentials cannot sign."""
    return ConfigurationError(f"{type(store).__name__} cannot sign URLs")


def check_right(right: str) -> None:
    """Raise :class:`ConfigurationError` unless ``right`` names a broker right."""
    if right not in ("send", "receive"):
        raise ConfigurationError(f"no such broker right: {right!r} (send or receive)")


def peek_refused(broker: object) -> ConfigurationError:
    """The error ``peek`` raises where the service cannot look without taking."""
    return ConfigurationError(
        f"{type(broker).__name__} cannot peek: the service has no way to look at a "
        "message without receiving it (capabilities.peek is False)"
    )


# -- stores ------------------------------------------------------------------------


def put_metadata(name: str, metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Check ``name`` and return ``metadata`` as a plain ``str -> str`` dict."""
    check_object_name(name)
    return {str(k): str(v) for k, v in (metadata or {}).items()}


def check_list_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is '' or a safe name prefix, else raise ConfigurationError."""
    if prefix:
        check_object_name(prefix.rstrip("/") or "x")
    return prefix


def signed_url_args(name: str, method: str, expires: timedelta) -> tuple[str, str, timedelta]:
    """The checked ``(name, METHOD, expires)`` of a ``signed_url`` call."""
    if method.upper() not in ("GET", "PUT"):
        raise ConfigurationError(f"signed_url method must be GET or PUT, not {method!r}")
    if not timedelta(seconds=1) <= expires <= MAX_SIGNED_URL_EXPIRY:
        raise ConfigurationError(f"signed_url expires must be 1 second to 7 days, not {expires}")
    return check_object_name(name), method.upper(), expires


class _Stop(Protocol):
    def is_set(self) -> bool: ...


class _Listed(Protocol):
    def list(self, prefix: str = "") -> Any: ...


def poll_watch_steps(
    store: _Listed,
    prefix: str,
    *,
    stop: _Stop,
    include_existing: bool,
    pause: Call,
    next_item: Callable[[Any], Any],
) -> StreamSteps[ObjectInfo]:
    """``watch`` by polling: list, yield what was not seen before, ``pause``, again.

    ``next_item(listing, None)`` gives a listing's next object or ``None``:
    ``next(it, None)`` for a sync store, ``anext(it, None)`` for an async one,
    so either pages lazily. ``pause`` waits for the next poll or ``stop``.
    """
    seen: set[tuple[str, str | None]] = set()
    if not include_existing:
        listing = store.list(prefix)
        while (obj := (yield Call(next_item, (listing, None)))) is not None:
            seen.add((obj.name, obj.etag))
    while not stop.is_set():
        listing = store.list(prefix)
        while (obj := (yield Call(next_item, (listing, None)))) is not None:
            key = (obj.name, obj.etag)
            if key not in seen:
                seen.add(key)
                yield obj
        yield pause
