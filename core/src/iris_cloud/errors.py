"""The one error tree of iris-cloud.

Every provider maps its SDK's exceptions onto these classes in one place (its
``errors.py``), keeping the SDK error as ``__cause__``. Callers decide what to
do from the class and from ``retryable``, never from SDK types.

Messages never carry secrets or patient data: they name fields, settings and
rights, not values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "FieldError",
    "IrisCloudError",
    "LockLost",
    "MessageTooLarge",
    "NotFound",
    "PermissionDenied",
    "Throttled",
    "Timeout",
    "Unavailable",
    "ValidationError",
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
