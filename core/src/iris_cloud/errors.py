"""The one error tree of iris-cloud.

Every provider maps its SDK's exceptions onto these classes in one place (its
``errors.py``), keeping the SDK error as ``__cause__``. Callers decide what to
do from the class and from ``retryable``, never from SDK types.

Messages never carry secrets or patient data: they name fields, settings and
rights, not values.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "FieldError",
    "IrisCloudError",
    "LockLost",
    "MessageTooLarge",
    "MissingField",
    "NotFound",
    "PermissionDenied",
    "Throttled",
    "Timeout",
    "Unavailable",
    "UnknownField",
    "ValidationError",
    "is_transient",
]


class IrisCloudError(Exception):
    """Base of every error raised by iris-cloud and its providers."""

    retryable: bool = False
    """Whether the same call may succeed if tried again later."""


class ConfigurationError(IrisCloudError):
    """A profile, URL, option or credential is missing or malformed."""


@dataclass(frozen=True)
class FieldError:
    """One failing field of a document: where, what kind, and why (never the value)."""

    path: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ValidationError(IrisCloudError):
    """A document or setting does not validate; lists every failing field path."""

    def __init__(self, title: str, errors: Sequence[FieldError]) -> None:
        self.title = title
        self.errors: list[FieldError] = list(errors)
        lines = [f"{title}: {len(self.errors)} invalid field(s)"]
        lines += [f"  {e}" for e in self.errors]
        super().__init__("\n".join(lines))


class MissingField(ValidationError):
    """A field IRIS always sends on this kind of message is absent or null.

    Raised by the ``require`` accessors of the model (``result.require.order``,
    :func:`iris_cloud.model.require`); ``errors`` holds one
    :class:`FieldError` of type ``missing`` with the field's wire path.
    """

    def __init__(self, message_type: str, path: str) -> None:
        self.path = path
        super().__init__(
            f"{message_type} without {path}",
            [FieldError(path, "missing", "absent or null, but always sent on this message")],
        )


class UnknownField(IrisCloudError, TypeError):
    """A model was built with a snake_case keyword that names none of its fields.

    A ``TypeError`` too, as for any unexpected keyword argument in Python. The
    message names the closest field (``did you mean 'evaluation_types'?``).
    """


class NotFound(IrisCloudError):
    """The queue, container, object or message does not exist."""


class AlreadyExists(IrisCloudError):
    """A conditional create found the object already there."""


class PermissionDenied(IrisCloudError):
    """The credentials lack a right the call needs.

    ``right`` names it (``read``, ``list``, ``receive``, ...), so that a user
    handed write-only credentials learns what the call needed.
    """

    def __init__(self, message: str, *, right: str | None = None) -> None:
        self.right = right
        super().__init__(message)


class CredentialsRejected(PermissionDenied):
    """The service did not accept the credentials at all (unknown key, bad secret, expired token).

    A :class:`PermissionDenied` for every right at once: no grant can fix it,
    only other keys (or a corrected clock, for signatures that expired).
    """


class MessageTooLarge(IrisCloudError):
    """A message body exceeds the service's limit and no claim-check store is set."""


class LockLost(IrisCloudError):
    """The message's lock expired or was taken by another consumer; it will be redelivered."""


class Throttled(IrisCloudError):
    """The service asked the client to slow down."""

    retryable = True


class Unavailable(IrisCloudError):
    """The service could not be reached or failed transiently."""

    retryable = True


class Timeout(IrisCloudError):
    """The call did not finish in time."""

    retryable = True


TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",
        "EDQUOT",
        "EROFS",
        "EIO",
        "ENFILE",
        "EMFILE",
        "ENOMEM",
        "EAGAIN",
        "EBUSY",
        "ESTALE",
        "ENOLCK",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "EPIPE",
        "EHOSTUNREACH",
        "ENETUNREACH",
        "ENETDOWN",
    )
    if hasattr(errno, name)
)
"""OS error numbers that mean the machine's own disk, file table or network failed
for now (full, read-only, I/O error, unreachable), not that the message was bad."""

# SQLite primary result codes of the same kind: busy, locked, I/O error, full,
# cannot open, read-only.
_TRANSIENT_SQLITE = frozenset({5, 6, 10, 13, 14, 8})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a passing failure of the consumer's own side, not the message's.

    True for an :class:`IrisCloudError` whose ``retryable`` is set
    (:class:`Unavailable`, :class:`Throttled`, :class:`Timeout`), an
    :class:`OSError` with one of :data:`TRANSIENT_ERRNOS` or a
    :class:`ConnectionError` / :class:`TimeoutError`, and a SQLite error that
    says busy, locked, I/O, full, cannot open or read-only; for any of these
    as the explicit ``__cause__`` (``raise ... from``) of another error, too.
    A :class:`ValidationError` never is: the content is wrong. Everything else
    (``PermissionDenied``, ``NotFound``, a ``ValueError`` from the handler ...)
    is the message's own failure.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ValidationError):
            return False
        if isinstance(current, IrisCloudError) and current.retryable:
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if isinstance(current, OSError) and current.errno in TRANSIENT_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _TRANSIENT_SQLITE:
                return True
        current = current.__cause__
    return False
