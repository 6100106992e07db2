"""What the providers share: URL options, the ``access`` emulation, settlement checks.

The built-in providers use all of it; the cloud providers use the option
converters, so that ``true``/``yes``/``1`` mean the same in every URL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from iris_cloud.errors import ConfigurationError, PermissionDenied
from iris_cloud.ports import Message

__all__ = [
    "BROKER_RIGHTS",
    "DEAD_LETTER_SUFFIX",
    "DEFAULT_LOCK_SECONDS",
    "DEFAULT_MAX_DELIVERY_COUNT",
    "MAX_DELIVERY_REASON",
    "STORE_RIGHTS",
    "Access",
    "check_properties",
    "check_queue_name",
    "merge_options",
    "non_negative_float",
    "parse_bool",
    "positive_float",
    "positive_int",
]

T = TypeVar("T")

DEFAULT_LOCK_SECONDS = 30.0
DEFAULT_MAX_DELIVERY_COUNT = 10
DEAD_LETTER_SUFFIX = "$dlq"
MAX_DELIVERY_REASON = "MaxDeliveryCountExceeded"

# What each ``access`` value grants, emulating the credentials IRIS hands out:
# a write-only SAS may upload / send and nothing else; a read-only one may read,
# list and receive (receiving includes settling what was received).
BROKER_RIGHTS = {"rw": {"send", "receive"}, "w": {"send"}, "r": {"receive"}}
STORE_RIGHTS = {
    "rw": {"read", "list", "write", "delete"},
    "w": {"write"},
    "r": {"read", "list"},
}

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def positive_float(name: str) -> Callable[[Any], float]:
    """A converter for an option that must be a number > 0."""

    def convert(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"option {name!r} must be a number") from exc
        if not number > 0:
            raise ConfigurationError(f"option {name!r} must be greater than 0")
        return number

    return convert


def non_negative_float(name: str) -> Callable[[Any], float]:
    """A converter for an option that must be a finite number >= 0."""

    def convert(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"option {name!r} must be a number") from exc
        if not 0 <= number < math.inf:
            raise ConfigurationError(f"option {name!r} must be a finite number >= 0")
        return number

    return convert


def positive_int(name: str) -> Callable[[Any], int]:
    """A converter for an option that must be an integer >= 1."""

    def convert(value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"option {name!r} must be an integer") from exc
        if number < 1:
            raise ConfigurationError(f"option {name!r} must be at least 1")
        return number

    return convert


def merge_options(
    url: str, options: Mapping[str, Any], spec: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    """Options from the URL query and keyword options (which win), converted by ``spec``.

    Unknown options are a :class:`ConfigurationError` naming them, so a typo
    is not silently ignored.
    """
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    merged: dict[str, Any] = {**query, **options}
    unknown = sorted(set(merged) - set(spec))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(spec))})"
        )
    return {k: spec[k](v) for k, v in merged.items()}


class Access:
    """The rights an endpoint was opened with (``access="r" | "w" | "rw"``)."""

    def __init__(self, value: Any, table: Mapping[str, set[str]]) -> None:
        if value not in table:
            raise ConfigurationError(
                f"option 'access' must be one of {', '.join(sorted(table))}, not {value!r}"
            )
        self.value: str = value
        self.rights = frozenset(table[value])

    def require(self, right: str, action: str, *args: object) -> None:
        """Raise :class:`PermissionDenied` naming ``right`` unless it was granted.

        ``action`` is %-formatted with ``args`` only when it is refused: a
        receive asks on every call and should not build its text for nothing.
        """
        if right not in self.rights:
            if args:
                action = action % args
            raise PermissionDenied(
                f"cannot {action}: the credentials lack the {right!r} right "
                f"(opened with access={self.value!r})",
                right=right,
            )


def check_queue_name(name: str) -> str:
    """Return ``name`` if it can name a built-in queue, else raise ConfigurationError."""
    if not _QUEUE_NAME.match(name):
        raise ConfigurationError(
            "queue name must be 1-200 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_properties(properties: Mapping[str, Any]) -> None:
    """Raise TypeError unless every property is a str key with a str/int/float/bool value."""
    if not isinstance(properties, Mapping):
        raise TypeError(f"message properties must be a mapping, not {type(properties).__name__}")
    for key, value in properties.items():
        if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"message property {key!r} must map a str to str, int, float or bool, "
                f"not {type(value).__name__}"
            )


def parse_bool(name: str) -> Callable[[Any], bool]:
    """A converter for a boolean option (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""

    def convert(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(f"option {name!r} must be true or false")

    return convert


def require_handle(message: Message, kind: type[T]) -> T:
    """The provider handle a received message carries, or ConfigurationError."""
    handle = message.raw
    if not isinstance(handle, kind) or message.lock_token is None:
        raise ConfigurationError(
            "message was not received from this kind of broker (no lock handle); "
            "settle messages with the broker that received them"
        )
    return handle
