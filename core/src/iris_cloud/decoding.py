"""Per-message decoding: one hostile service message never costs the others.

Anyone with send rights on a queue writes what a provider decodes (attributes,
body encodings, application properties, claim-check pointers). So each
service message is decoded on its own: a provider's ``_receive`` (and
``peek``) hands its raw messages to :func:`decode_each`, which returns, for a
message whose decoding raised, an :class:`UndecodableMessage` that carries
only what settling it needs. :meth:`MessageBroker.receive
<iris_cloud.ports.MessageBroker.receive>` dead-letters those alone (reason
:data:`DECODE_FAILED`) and delivers the rest of the batch.

What a decoded message must look like is checked here too, once for every
provider: ``bytes`` body, ``str`` headers, properties mapping ``str`` to
``str``/``int``/``float``/``bool``. A provider whose storage holds
:class:`Message` objects it checked with :func:`check_decoded` when they were
sent (``mem://``) has nothing a sender wrote left to decode: it hands out
copies without passing them through here again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from iris_cloud.errors import ValidationError
from iris_cloud.logs import get_logger
from iris_cloud.messages import Message

__all__ = ["DECODE_FAILED", "UndecodableMessage", "check_decoded", "decode_each", "failure_text"]

log = get_logger("iris_cloud.decoding")

R = TypeVar("R")

DECODE_FAILED = "DecodeFailed"
"""Dead-letter reason of a message that could not be turned into a :class:`Message`."""

_SCALARS = (str, int, float, bool)


@dataclass(repr=False)
class UndecodableMessage(Message):
    """A received message whose decoding failed: enough to settle it, nothing more.

    ``body`` holds the raw body where the provider had one as bytes, headers
    are empty and ``properties`` is empty; ``raw`` and ``lock_token`` are the
    provider's handle, so ``dead_letter`` / ``complete`` work as on any
    received message. ``decode_error`` names what failed (exception class
    only: the exception's text may quote the message).
    """

    decode_error: str = ""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def failure_text(exc: BaseException) -> str:
    """What to say about ``exc`` in a dead-letter reason: its class, and field paths if any.

    Never the exception's message: it may quote a value from the message.
    """
    name = type(exc).__name__
    if isinstance(exc, ValidationError) and exc.errors:
        paths = ", ".join(e.path or "<root>" for e in exc.errors)
        return f"{name} at {paths}"
    return name


def check_decoded(message: Message) -> Message:
    """Return ``message`` if its fields have the types :class:`Message` promises, else raise.

    Raises :class:`TypeError` naming the field (not its value).
    """
    if not isinstance(message.body, bytes):
        raise TypeError("body is not bytes")
    if not isinstance(message.message_id, str):
        raise TypeError("message_id is not a str")
    for name in ("correlation_id", "content_type", "subject"):
        if not isinstance(getattr(message, name), str | None):
            raise TypeError(f"{name} is not a str")
    if not isinstance(message.properties, dict):
        raise TypeError("properties is not a mapping")
    for key, value in message.properties.items():
        if not isinstance(key, str) or not isinstance(value, _SCALARS):
            raise TypeError("a property is not str -> str, int, float or bool")
    return message


def decode_each(
    raws: Iterable[R],
    decode: Callable[[R], Message],
    shell: Callable[[R], Message],
) -> list[Message]:
    """Decode each of ``raws`` on its own; a failure becomes an :class:`UndecodableMessage`.

    ``decode`` turns one service message into a :class:`Message` (it may
    raise anything: the input is the sender's). ``shell`` builds, from the
    same raw message, one that carries only the settlement handle
    (``lock_token``, ``raw``, the service's message id, the raw body if it is
    bytes, and the dead-letter reason and description the service or our
    ``dead_letter`` recorded, where there are any); it must not parse anything
    a sender controls. A raw message
    that not even ``shell`` can describe is left out and logged: it cannot be
    settled, so its lock expires and the service redelivers or dead-letters it.
    """
    out: list[Message] = []
    for raw in raws:
        try:
            out.append(check_decoded(decode(raw)))
            continue
        except Exception as exc:  # the sender's content: anything may fail
            error = failure_text(exc)
        try:
            handle = shell(raw)
        except Exception as exc:
            log.error(
                "a received message could not be decoded (%s) nor settled (%s); "
                "it stays locked until its lock expires",
                error,
                type(exc).__name__,
            )
            continue
        out.append(
            UndecodableMessage(
                body=handle.body if isinstance(handle.body, bytes) else b"",
                message_id=_text(handle.message_id) or "",
                content_type=None,
                delivery_count=handle.delivery_count,
                enqueued_at=handle.enqueued_at,
                lock_token=handle.lock_token,
                locked_until=handle.locked_until,
                dead_letter_reason=_text(handle.dead_letter_reason),
                dead_letter_description=_text(handle.dead_letter_description),
                raw=handle.raw,
                decode_error=error,
            )
        )
    return out
